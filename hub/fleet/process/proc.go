package process

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports, as procfs assumes too.
const clockTicks = 100

// procStat is what the driver reads from /proc/<pid>/stat.
type procStat struct {
	state        byte   // R, S, D, Z, X, …
	pgrp         int    // process group
	utime, stime uint64 // CPU time in clock ticks
	startTicks   uint64 // start time in clock ticks after boot: with the pid, the process's identity
}

// readStat reads /proc/<pid>/stat with procfs.
func readStat(pid int) (procStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procStat{}, err
	}
	return statOf(p)
}

func statOf(p procfs.Proc) (procStat, error) {
	s, err := p.Stat()
	if err != nil {
		return procStat{}, err
	}
	if len(s.State) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: state %q", p.PID, s.State)
	}
	return procStat{state: s.State[0], pgrp: s.PGRP, utime: uint64(s.UTime), stime: uint64(s.STime), startTicks: s.Starttime}, nil
}

// startedAt is when a process that started startTicks after boot started.
// It reads the boot time from /proc/stat (all of it, every CPU's line),
// so it is kept off readStat, which liveness checks call per thread.
func startedAt(startTicks uint64) (time.Time, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return time.Time{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(st.BootTime), 0).Add(time.Duration(startTicks) * time.Second / clockTicks), nil
}

// threadsLive reports whether any thread of process pid has not exited
// yet. Call it only for a pid known to be the instance's: a zombie's pid is
// not reused before it is reaped.
func threadsLive(pid int) bool {
	threads, err := procfs.AllThreads(pid)
	if err != nil {
		return false
	}
	for _, t := range threads {
		if st, err := statOf(t); err == nil && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

// readUsage reads the process's stat and its VmRSS in bytes, opening it
// once.
func readUsage(pid int) (procStat, uint64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procStat{}, 0, err
	}
	st, err := statOf(p)
	if err != nil {
		return procStat{}, 0, err
	}
	s, err := p.NewStatus()
	if err != nil {
		return procStat{}, 0, err
	}
	return st, s.VmRSS, nil
}

// memTotalMB is the machine's memory in MB, 0 when unknown.
func memTotalMB() int {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	m, err := fs.Meminfo()
	if err != nil || m.MemTotal == nil {
		return 0
	}
	return int(*m.MemTotal >> 10) // kB
}
