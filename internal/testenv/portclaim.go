package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// A port FreePort hands out is free when it is picked, but the server it
// is for may bind it seconds later (Patroni, etcd and Node-RED take that
// long to start). Without a claim, a second FreePort in this process or in
// another test binary running beside it (go test runs packages in
// parallel) may pick the same port in that window, and one of the two
// servers then fails to bind. claimPort makes a handed-out port unique on
// the machine for the life of the process: a map for this process, and an
// exclusive flock on a file per port for the others. The kernel drops the
// locks when the process exits, however it exits.
var claimed = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// portClaimDir holds one lock file per claimed port.
var portClaimDir = filepath.Join(os.TempDir(), "redforge-test-ports")

// claimPort reports whether port was not handed out before on this machine
// by a live test process, and claims it if so. When the lock directory
// cannot be used, only this process's own claims count.
func claimPort(port int) bool {
	claimed.Lock()
	defer claimed.Unlock()
	if claimed.ports[port] {
		return false
	}
	if err := os.MkdirAll(portClaimDir, 0o1777); err == nil {
		fd, err := syscall.Open(filepath.Join(portClaimDir, strconv.Itoa(port)), syscall.O_CREAT|syscall.O_RDWR|syscall.O_CLOEXEC, 0o666)
		if err == nil {
			if syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
				syscall.Close(fd)
				return false
			}
			// The descriptor stays open (and the lock held) until the
			// process exits.
		}
	}
	claimed.ports[port] = true
	return true
}
