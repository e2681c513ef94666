package process

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would
// need cgo).
const clockTicks = 100

// procStat is what the driver reads from /proc/<pid>/stat.
type procStat struct {
	state        byte   // R, S, D, Z, X, …
	pgrp         int    // process group
	utime, stime uint64 // CPU time in clock ticks
	startTicks   uint64 // start time in clock ticks after boot
}

// readStat parses /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed /proc stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed /proc stat %q", b)
	}
	var st procStat
	st.state = f[0][0]
	var errs [4]error
	st.pgrp, errs[0] = strconv.Atoi(f[5-3])
	st.utime, errs[1] = strconv.ParseUint(f[14-3], 10, 64)
	st.stime, errs[2] = strconv.ParseUint(f[15-3], 10, 64)
	st.startTicks, errs[3] = strconv.ParseUint(f[22-3], 10, 64)
	for _, err := range errs {
		if err != nil {
			return procStat{}, fmt.Errorf("malformed /proc stat: %w", err)
		}
	}
	return st, nil
}

// threadsLive reports whether any thread of process pid has not exited
// yet. Call it only for a pid known to be the instance's: a zombie's pid is
// not reused before it is reaped.
func threadsLive(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue
		}
		if st, err := parseStat(b); err == nil && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

// readRSS returns VmRSS of the process in bytes.
func readRSS(pid int) (uint64, error) {
	return statusValue(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

// memTotalMB is the machine's memory in MB, 0 when unknown.
func memTotalMB() int {
	v, err := statusValue("/proc/meminfo", "MemTotal:")
	if err != nil {
		return 0
	}
	return int(v >> 20)
}

// statusValue finds "key  N kB" in a /proc file and returns N in bytes.
func statusValue(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fields := strings.Fields(line[len(key):])
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n <<= 10
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// uptimeSeconds returns the seconds since boot (/proc/uptime).
func uptimeSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("malformed /proc/uptime %q", b)
	}
	return strconv.ParseFloat(f[0], 64)
}
