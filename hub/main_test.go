package hub_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when one leaves a goroutine behind.
// Idle keep-alive connections of HTTP transports (the tests call hubs and
// runtimes through http.DefaultClient, hubtest's client and clients of
// the hub's own) are a transport's pool, not a leaked goroutine of ours:
// the default transport's are closed before the check, and the read and
// write loops of pooled connections are not counted.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			// Pebble (the ACME test's CA, run as a library) leaves its
			// validation worker running after the test.
			goleak.IgnoreTopFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on a successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
