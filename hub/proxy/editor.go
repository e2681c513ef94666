package proxy

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"

	"github.com/redforge/controltower/hub/catalog"
	rfleet "github.com/redforge/controltower/hub/fleet"
)

// EditorCSP is the Content-Security-Policy of the Node-RED editor served
// through the hub: the editor inserts the nodes' HTML with inline scripts
// and runs the Monaco editor's workers from blobs, so it needs more than
// the console's policy; it still loads nothing from another origin and
// cannot be framed.
const EditorCSP = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss:; worker-src 'self' blob:; " +
	"frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// EditorRefused are the editor paths the hub never forwards: Node-RED's
// own password login and token revocation. The editor signs in through
// the hub (the editor token), so these only ever serve a password guess
// at the hub's internal admin user.
var EditorRefused = []string{"/auth/token", "/auth/revoke"}

// EditorTarget picks the runtime an editor session edits: the allocation
// named by sticky when it still serves the live row and runs, else the
// replica the data plane would pick first (this hub's, then the region's,
// then the nearest). ok is false when the instance has no running replica.
func (p *Proxy) EditorTarget(name, sticky string) (live catalog.Instance, a catalog.Allocation, ok bool, err error) {
	live, targets, err := p.Targets(name)
	if err != nil || len(targets) == 0 {
		return live, a, false, err
	}
	if i := slices.IndexFunc(targets, func(t catalog.Allocation) bool { return t.ID == sticky }); i >= 0 {
		return live, targets[i], true, nil
	}
	return live, targets[0], true, nil
}

// ServeEditor proxies an editor request to one runtime's admin root: rest
// is the path below /editor/{name} ("/" when empty), token the editor
// token the hub signed for the user, handed to Node-RED in the editor
// header (Node-RED's adminAuth.tokens checks it). The hub's credentials
// (Authorization, cookies) never reach the runtime, EditorRefused paths
// answer 404, and the reply gets EditorCSP. The editor's WebSocket
// (/comms) goes through like any request (the upgrade carries the token
// header too).
func (p *Proxy) ServeEditor(w http.ResponseWriter, r *http.Request, target catalog.Allocation, rest, token string) {
	rest = CleanPath(rest)
	for _, refused := range EditorRefused {
		if strings.EqualFold(strings.TrimSuffix(rest, "/"), refused) {
			http.Error(w, "the editor signs in through the hub; Node-RED's own login is not served here", http.StatusNotFound)
			return
		}
	}
	addr := target.Address()
	rp := &httputil.ReverseProxy{
		Transport:     p.transport,
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.Out.URL.Path, pr.Out.URL.RawPath = rfleet.AdminRoot+rest, ""
			pr.Out.Host = addr
			pr.SetXForwarded()
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(rfleet.EditorTokenHeader, token)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del("Set-Cookie")
			resp.Header.Set("Content-Security-Policy", EditorCSP)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("editor proxy error", "instance", target.InstanceID, "replica", target.Replica, "error", err)
			http.Error(w, "the instance's runtime did not answer", http.StatusBadGateway)
		},
	}
	w.Header().Del("Content-Security-Policy") // the hub's own; the runtime's reply gets EditorCSP
	rp.ServeHTTP(w, r)
}
