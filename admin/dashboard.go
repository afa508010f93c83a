package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the dashboard: plain HTML, CSS and JavaScript, embedded so the
// binary serves it with nothing fetched from anywhere at run time.
//
//go:embed web
var web embed.FS

// index serves the dashboard's single page; its script asks the API for
// everything and shows the login form when the API answers 401.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := web.ReadFile("web/index.html")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// assets serves /assets/ from web/.
func (s *Server) assets() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/assets/", http.FileServerFS(sub))
}
