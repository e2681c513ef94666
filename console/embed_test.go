package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// TestHandlerNotBuilt: without index.html every path says how to build.
func TestHandlerNotBuilt(t *testing.T) {
	h := handler(fstest.MapFS{"README.txt": {Data: []byte("placeholder")}})
	for _, p := range []string{"/", "/instances/x", "/README.txt"} {
		rec := get(h, p)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "make console") {
			t.Errorf("GET %s = %d %q, want the not-built page", p, rec.Code, rec.Body.String())
		}
	}
}

// TestHandlerBuilt: files by path with long caching for hashed assets,
// index.html for pages, 404 for a missing asset.
func TestHandlerBuilt(t *testing.T) {
	h := handler(fstest.MapFS{
		"index.html":       {Data: []byte("<!doctype html><div id=app></div>")},
		"assets/app-1.js":  {Data: []byte("console.log(1)")},
		"README.txt":       {Data: []byte("placeholder")},
		"assets/style.css": {Data: []byte("body{}")},
	})
	cases := []struct {
		path, want, cache string
		code              int
	}{
		{"/", "id=app", "no-cache", 200},
		{"/governance/audit", "id=app", "no-cache", 200},
		{"/README.txt", "id=app", "no-cache", 200},
		{"/assets/app-1.js", "console.log", "immutable", 200},
		{"/assets/missing.js", "not found", "", 404},
	}
	for _, c := range cases {
		rec := get(h, c.path)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) || !strings.Contains(rec.Header().Get("Cache-Control"), c.cache) {
			t.Errorf("GET %s = %d %q (Cache-Control %q), want %d with %q and %q", c.path, rec.Code, rec.Body.String(), rec.Header().Get("Cache-Control"), c.code, c.want, c.cache)
		}
	}
	if ct := get(h, "/assets/style.css").Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("css served as %q", ct)
	}
}
