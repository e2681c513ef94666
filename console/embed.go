// Package console embeds the built web console (console/dist, made by
// `make console`) and serves it. It owns the static files only: every page
// talks to the hub through the public API and /api/ws. Without a build it
// serves a page that says how to make one.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// NotBuilt is the body served when dist/index.html is absent.
const NotBuilt = `<!doctype html><meta charset="utf-8"><title>RedForge Control Tower</title>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>RedForge Control Tower</h1>
<p>The web console is not built: run <code>make console</code> and rebuild the hub
(<code>make run</code> does both). The API is served under <code>/api/</code>.</p>`

// FS returns the built console files, rooted at dist.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path; cannot fail
	}
	return sub
}

// Built reports whether the embedded files include a built console.
func Built() bool {
	_, err := fs.Stat(FS(), "index.html")
	return err == nil
}

// Handler serves the console: a file of the build by its path, and
// index.html for every other path (the console routes in the browser).
// Without a build it answers every path with the NotBuilt page.
func Handler() http.Handler { return handler(FS()) }

func handler(files fs.FS) http.Handler {
	static := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		index, err := fs.ReadFile(files, "index.html")
		if err != nil {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(NotBuilt))
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && name != "index.html" && name != "README.txt" {
			if st, err := fs.Stat(files, name); err == nil && !st.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					// Vite names assets by content hash.
					w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				}
				static.ServeHTTP(w, r)
				return
			}
			if strings.HasPrefix(name, "assets/") {
				http.NotFound(w, r)
				return
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		// Explicit: a router's not-found handler may have preset 404.
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(index)
	})
}
