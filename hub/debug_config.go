package hub

import (
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
)

// DebugConfig turns on the runtime's block and mutex profiling, so the
// block and mutex profiles of GET /debug/pprof/ (hub/api/debug.go) have
// something in them. Both cost some speed and are off by default.
type DebugConfig struct {
	// DebugBlockRate is runtime.SetBlockProfileRate's rate: one blocking
	// event (channel, select, sync.Cond, mutex wait) is sampled per this
	// many nanoseconds spent blocked; 1 records every event; 0 is off.
	DebugBlockRate int `json:"debug_block_rate"`
	// DebugMutexFraction is runtime.SetMutexProfileFraction's fraction:
	// on average 1 in this many mutex contention events is recorded; 0 is
	// off.
	DebugMutexFraction int `json:"debug_mutex_fraction"`
}

// debugFlags registers --debug-block-rate and --debug-mutex-fraction and
// returns what applies them (flags over REDFORGE_* env over the file).
func debugFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	const block, mutex = "debug-block-rate", "debug-mutex-fraction"
	b := fs.Int(block, 0, "sample one blocking event per this many nanoseconds blocked for the block profile of /debug/pprof/ (1: every event; 0: off) (env "+EnvName(block)+")")
	m := fs.Int(mutex, 0, "record 1 in this many mutex contention events for the mutex profile of /debug/pprof/ (0: off) (env "+EnvName(mutex)+")")
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		for _, o := range []struct {
			name string
			flag *int
			dst  *int
		}{{block, b, &cfg.DebugBlockRate}, {mutex, m, &cfg.DebugMutexFraction}} {
			if v := getenv(EnvName(o.name)); v != "" && !set[o.name] {
				i, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not a whole number", EnvName(o.name), v)
				}
				*o.dst = i
			}
			if set[o.name] {
				*o.dst = *o.flag
			}
		}
		return nil
	}
}

// validate reports a bad debug setting through bad.
func (c DebugConfig) validate(bad func(field, format string, a ...any)) {
	if c.DebugBlockRate < 0 {
		bad("debug-block-rate", "%d is negative; 0 turns block profiling off", c.DebugBlockRate)
	}
	if c.DebugMutexFraction < 0 {
		bad("debug-mutex-fraction", "%d is negative; 0 turns mutex profiling off", c.DebugMutexFraction)
	}
}

// apply sets the runtime's block and mutex profiling rates. They belong
// to the process, not to one hub: a setting of 0 leaves the rate alone,
// so a second hub in the same process (tests) does not turn off what the
// first turned on.
func (c DebugConfig) apply(log *slog.Logger) {
	if c.DebugBlockRate > 0 {
		runtime.SetBlockProfileRate(c.DebugBlockRate)
		log.Info("block profiling on", "debug_block_rate", c.DebugBlockRate)
	}
	if c.DebugMutexFraction > 0 {
		runtime.SetMutexProfileFraction(c.DebugMutexFraction)
		log.Info("mutex profiling on", "debug_mutex_fraction", c.DebugMutexFraction)
	}
}
