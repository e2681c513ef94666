package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// InstanceProxy serves instances over HTTP (hub/proxy.Proxy): their data
// plane and their editors.
type InstanceProxy interface {
	DataProxy
	EditorProxy
}

// DataProxy serves the data plane of logical instances (hub/proxy).
type DataProxy interface {
	Serve(w http.ResponseWriter, r *http.Request, name, rest string)
}

// proxyMethods are the methods /i/:name/*path forwards.
var proxyMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// proxyRoutes registers /i/:name/*path. The route is public: it is the
// instance's own HTTP surface (Node-RED http-in endpoints), which the
// instance's flows protect as they choose, like Node-RED's httpNodeAuth;
// the hub's bearer token is stripped before forwarding.
func (s *Server) proxyRoutes() {
	if s.cfg.Proxy == nil {
		return
	}
	h := func(c *gin.Context) { s.cfg.Proxy.Serve(c.Writer, c.Request, c.Param("name"), c.Param("path")) }
	for _, m := range proxyMethods {
		s.handle(m, "/i/:name/*path", Public, h)
	}
}
