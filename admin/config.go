package admin

import (
	"encoding/json"
	"net/http"

	"github.com/mailhook/mailhook/config"
)

// configDiff is POST /api/config/diff: the body is {"fingerprint": {key:
// hash}} of a config file (config.Fingerprint); the answer lists the keys
// whose values differ from what the server runs, so `mailhook
// check-config` can say what a reload or a restart would change without
// either side showing a value.
func (s *Server) configDiff(w http.ResponseWriter, r *http.Request) {
	if s.opts.RunningConfig == nil {
		writeError(w, http.StatusNotImplemented, "the running config is not available")
		return
	}
	var req struct {
		Fingerprint map[string]string `json:"fingerprint"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Fingerprint == nil {
		writeError(w, http.StatusBadRequest, `want {"fingerprint": {key: hash}}`)
		return
	}
	changed := config.Changed(s.opts.RunningConfig(), req.Fingerprint)
	if changed == nil {
		changed = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"changed": changed})
}
