package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPingIsNotAWarning: a health check of the embedded broker (Ping, a
// TCP connect and close) logs nothing at warn; other warnings still do.
func TestPingIsNotAWarning(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := NewEmbedded("127.0.0.1:0", nil, log)
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 3 {
		if err := b.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The broker logs each closed probe asynchronously: wait for the
	// three, then check their level.
	testenv.WaitFor(t, 5*time.Second, "the probes logged", func() error {
		if n := strings.Count(buf.String(), "read connection: EOF"); n < 3 {
			return fmt.Errorf("%d logged", n)
		}
		return nil
	})
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "EOF") && !strings.Contains(line, "level=DEBUG") {
			t.Fatalf("a ping was logged above debug: %s", line)
		}
	}
	slog.New(quietEOF{log.Handler()}).Warn("", "error", "something else")
	if !strings.Contains(buf.String(), "level=WARN msg=\"\" error=\"something else\"") {
		t.Fatal("another warning was dropped")
	}
}
