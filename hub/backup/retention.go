package backup

import (
	"fmt"
	"time"
)

// Default retention (the roadmap's): the newest backup of each of the 30
// most recent days that have one, and of each of the 12 most recent months.
const (
	DefaultKeepDaily   = 30
	DefaultKeepMonthly = 12
)

// Retention says which backups prune keeps, with restic's semantics: for
// each of the Daily most recent UTC days that hold a backup, the newest of
// that day; likewise for months. A backup kept by either rule stays.
// Zero for both keeps everything.
type Retention struct {
	Daily   int `json:"daily"`
	Monthly int `json:"monthly"`
}

// Validate refuses negative counts.
func (r Retention) Validate() error {
	if r.Daily < 0 || r.Monthly < 0 {
		return fmt.Errorf("retention: daily and monthly must not be negative (got %d, %d)", r.Daily, r.Monthly)
	}
	return nil
}

// Split returns the objects to keep and to delete, each newest first.
func (r Retention) Split(objs []Object) (keep, drop []Object) {
	objs = append([]Object(nil), objs...)
	sortNewestFirst(objs)
	if r.Daily == 0 && r.Monthly == 0 {
		return objs, nil
	}
	days, months := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		t := o.Time.UTC()
		day, month := t.Format(time.DateOnly), t.Format("2006-01")
		kept := false
		if !days[day] && len(days) < r.Daily {
			days[day], kept = true, true
		}
		if !months[month] && len(months) < r.Monthly {
			months[month], kept = true, true
		}
		if kept {
			keep = append(keep, o)
		} else {
			drop = append(drop, o)
		}
	}
	return keep, drop
}
