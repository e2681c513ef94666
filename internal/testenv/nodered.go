package testenv

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const nodeREDStartWait = 60 * time.Second

// NodeREDInstall locates the npm-installed Node-RED 4.1 and the node binary
// that runs it.
type NodeREDInstall struct {
	Node  string // the node binary
	RedJS string // .../node_modules/node-red/red.js
	Dir   string // the npm --prefix directory (has node_modules/)
}

// NodeREDProc is a running Node-RED process started by NodeRED.
type NodeREDProc struct {
	URL     string // http://127.0.0.1:PORT, no trailing slash
	Port    int
	UserDir string // holds settings.js and flows.json
}

// NodeREDPaths returns where Node-RED 4.1 and node are installed, after
// checking that both files exist. It fails the test when they do not.
func NodeREDPaths(tb testing.TB) NodeREDInstall {
	tb.Helper()
	node := mustExecutable(tb, "node", keyNode)
	dir := mustLookup(tb, "node-red", keyNodeREDDir)
	in := NodeREDInstall{
		Node:  node,
		Dir:   dir,
		RedJS: filepath.Join(dir, "node_modules", "node-red", "red.js"),
	}
	if _, err := os.Stat(in.RedJS); err != nil {
		unavailable(tb, "node-red", err)
	}
	return in
}

// NodeRED starts a Node-RED 4.1 process listening on 127.0.0.1 on a free
// port, with a fresh user dir and a minimal settings.js (no telemetry, no
// projects), and waits up to 60 s until GET / answers 200. tb.Cleanup stops
// its process group. It fails the test when Node-RED is not installed or
// does not start; the failure includes the end of its output.
func NodeRED(tb testing.TB) NodeREDProc {
	tb.Helper()
	in := NodeREDPaths(tb)
	userDir := tb.TempDir()
	port, _ := startServer(tb, server{
		what:    "node-red",
		path:    in.Node,
		timeout: nodeREDStartWait,
		args: func(_ string, port int) ([]string, error) {
			settings := filepath.Join(userDir, "settings.js")
			if err := os.WriteFile(settings, []byte(nodeREDSettings(port)), 0o644); err != nil {
				return nil, err
			}
			return []string{in.RedJS, "--port", strconv.Itoa(port), "--userDir", userDir,
				"--settings", settings}, nil
		},
		ready: func(port int) error { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/", port)) },
	})
	return NodeREDProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, UserDir: userDir}
}

// nodeREDSettings is a minimal settings.js for a test instance.
func nodeREDSettings(port int) string {
	return fmt.Sprintf(`// Written by internal/testenv for one test.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: %d,
    flowFile: "flows.json",
    credentialSecret: "redforge-test",
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: true, ui: false },
    editorTheme: { projects: { enabled: false }, tours: false },
    logging: { console: { level: "info", metrics: false, audit: false } },
};
`, port)
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// httpOK succeeds when GET url answers 200.
func httpOK(url string) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
