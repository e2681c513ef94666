package api

import (
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/console"
)

// consoleRoutes serves the web console at / : its files are public static
// assets (the pages call the API with the user's own token). Any other GET
// outside the API is a console page the browser routes itself, so it gets
// index.html; everything else keeps the API's JSON 404.
func (s *Server) consoleRoutes() {
	h := console.Handler()
	serve := func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) }
	s.handle(http.MethodGet, "/", Public, serve)
	s.handle(http.MethodGet, "/assets/*filepath", Public, serve)
	s.engine.NoRoute(func(c *gin.Context) {
		if isConsolePage(c.Request) {
			serve(c)
			return
		}
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no route " + c.Request.Method + " " + c.Request.URL.Path})
	})
}

// isConsolePage reports whether r is a browser navigation to a console
// page: a GET outside /api/, /i/, /editor/ and /metrics for a path without a file
// extension.
func isConsolePage(r *http.Request) bool {
	p := r.URL.Path
	if r.Method != http.MethodGet {
		return false
	}
	for _, prefix := range []string{"/api/", "/i/", "/editor/", "/metrics"} {
		if strings.HasPrefix(p, prefix) || p+"/" == prefix {
			return false
		}
	}
	return path.Ext(p) == ""
}
