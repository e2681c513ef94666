package hub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"
)

// A hub whose Raft port is taken fails to open with an error that says
// so (errors.Is EADDRINUSE): the backup verification's scratch hub relies
// on it to retry on another port when its pick was taken meanwhile.
func TestRaftPortTakenIsAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.MQTTListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RaftListen = l.Addr().String()
	h := New(cfg, "test", slog.New(slog.DiscardHandler))
	err = h.Open(context.Background())
	if err == nil {
		h.Close()
		t.Fatal("a hub opened on a taken Raft port")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("error %v is not EADDRINUSE", err)
	}
}
