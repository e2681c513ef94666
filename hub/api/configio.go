package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/catalog"
)

const (
	actionConfigExported = "CONFIG_EXPORTED"
	actionConfigImported = "CONFIG_IMPORTED"
	// MaxConfigBytes bounds an imported configuration document.
	MaxConfigBytes = 32 << 20
)

func (s *Server) configRoutes() {
	if s.cfg.Catalog == nil || s.cfg.Cluster == nil {
		return
	}
	s.handle(http.MethodGet, "/api/config/export", Perm(auth.ResourceBackups, auth.ActionRead), s.exportConfig)
	s.handle(http.MethodPost, "/api/config/import", Perm(auth.ResourceBackups, auth.ActionCreate), s.importConfig)
}

// exportConfig serves GET /api/config/export: users (with password
// hashes), roles, API tokens' metadata, regions and placement rules.
func (s *Server) exportConfig(c *gin.Context) {
	perms := map[catalog.Role][]string{}
	for _, r := range auth.Roles {
		for _, p := range auth.PermissionsOf(r) {
			perms[r] = append(perms[r], p.String())
		}
	}
	doc := backup.ExportConfig(s.cfg.Catalog, perms, s.cfg.Version, time.Now())
	s.audit(c, actionConfigExported, "config", "", map[string]any{"users": len(doc.Users), "api_tokens": len(doc.Tokens),
		"regions": len(doc.Regions), "placement": len(doc.Placement)})
	c.Header("Content-Disposition", `attachment; filename="redforge-config.json"`)
	c.JSON(http.StatusOK, doc)
}

// importConfig serves POST /api/config/import[?dry_run=true]: the changes
// the document makes (create, update, unchanged, skip per item), applied
// unless dry_run. Importing the same document again changes nothing.
func (s *Server) importConfig(c *gin.Context) {
	dry, err := strconv.ParseBool(c.DefaultQuery("dry_run", "false"))
	if err != nil {
		abort(c, Invalid("dry_run", "dry_run must be true or false"))
		return
	}
	var doc backup.ConfigDoc
	if !bindJSON(c, &doc, MaxConfigBytes) {
		return
	}
	plan, err := backup.Plan(s.cfg.Catalog, doc, uuid.NewString)
	if err != nil {
		abort(c, Invalid("config", err.Error()))
		return
	}
	counts := map[string]int{}
	for _, ch := range plan {
		counts[ch.Action]++
	}
	if !dry {
		if err := backup.ApplyPlan(c.Request.Context(), s.cfg.Cluster, plan); err != nil {
			abort(c, err)
			return
		}
		s.audit(c, actionConfigImported, "config", "", map[string]any{"changes": counts})
	}
	c.JSON(http.StatusOK, gin.H{"dry_run": dry, "changes": plan, "counts": counts})
}
