package regions

import (
	"testing"
	"time"
)

func TestChooseFailover(t *testing.T) {
	ms := time.Millisecond
	top := &Topology{Regions: []Region{{Name: "us", FailoverTo: []string{"apac", "eu"}}, {Name: "eu"}, {Name: "apac"}}}
	up := map[string]bool{"us": false, "eu": true, "apac": true}
	rtt := map[string]time.Duration{"eu": 80 * ms, "apac": 150 * ms}
	for _, tc := range []struct {
		name string
		top  *Topology
		from string
		up   map[string]bool
		want string
		ok   bool
	}{
		{"configured order wins over RTT", top, "us", up, "apac", true},
		{"configured target down: next configured", top, "us", map[string]bool{"eu": true, "apac": false}, "eu", true},
		{"no topology: nearest by RTT", nil, "us", up, "eu", true},
		{"unmeasured last", nil, "us", map[string]bool{"eu": true, "apac": true, "mx": true}, "eu", true},
		{"never itself", nil, "eu", map[string]bool{"eu": true}, "", false},
		{"nothing up", top, "us", map[string]bool{}, "", false},
	} {
		got, ok := ChooseFailover(tc.top, tc.from, tc.up, rtt)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: ChooseFailover = %q %v, want %q %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
