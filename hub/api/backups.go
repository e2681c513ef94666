package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/backup"
)

// Backups is what the backup routes need of hub/backup.
type Backups interface {
	Create(ctx context.Context) (*backup.Manifest, error)
	List(ctx context.Context) ([]backup.Object, error)
	Verify(ctx context.Context, name string) (*backup.VerifyResult, error)
	Prune(ctx context.Context, dryRun bool) (keep, drop []backup.Object, err error)
	Stats() *backup.Stats
}

// Audit actions of the backup routes.
const (
	actionBackupCreated  = "BACKUP_CREATED"
	actionBackupVerified = "BACKUP_VERIFIED"
	actionBackupsPruned  = "BACKUPS_PRUNED"
)

func mapBackup(err error) *Error {
	switch {
	case errors.Is(err, backup.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error(), Field: "name"}
	case errors.Is(err, backup.ErrCorrupt):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "corrupt_archive", Message: err.Error(), Field: "name"}
	case errors.Is(err, backup.ErrFormat), errors.Is(err, backup.ErrKeyMismatch):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "unrestorable_archive", Message: err.Error(), Field: "name"}
	}
	return nil
}

func (s *Server) backupRoutes() {
	if s.cfg.Backups == nil {
		return
	}
	p := func(a auth.Action) Access { return Perm(auth.ResourceBackups, a) }
	s.handle(http.MethodPost, "/api/backups", p(auth.ActionCreate), s.createBackup)
	s.handle(http.MethodGet, "/api/backups", p(auth.ActionRead), s.listBackups)
	s.handle(http.MethodPost, "/api/backups/:name/verify", p(auth.ActionUpdate), s.verifyBackup)
	s.handle(http.MethodPost, "/api/backups/prune", p(auth.ActionDelete), s.pruneBackups)
}

// createBackup serves POST /api/backups: one archive of the catalog and
// the store, made while the hub serves, put at the configured destination.
func (s *Server) createBackup(c *gin.Context) {
	m, err := s.cfg.Backups.Create(c.Request.Context())
	if err != nil {
		s.audit(c, actionBackupCreated, "backup", "", map[string]any{"ok": false, "error": err.Error()})
		abort(c, err)
		return
	}
	s.audit(c, actionBackupCreated, "backup", m.ID, map[string]any{"ok": true, "catalog_index": m.CatalogIndex,
		"audit_head_id": m.Store.AuditHeadID, "files": len(m.Files)})
	c.JSON(http.StatusCreated, gin.H{"name": m.ID, "manifest": m, "size_bytes": s.cfg.Backups.Stats().Status().LastBytes})
}

// listBackups serves GET /api/backups: the archives at the destination,
// newest first, and the last outcomes.
func (s *Server) listBackups(c *gin.Context) {
	objs, err := s.cfg.Backups.List(c.Request.Context())
	if err != nil {
		abort(c, err)
		return
	}
	if objs == nil {
		objs = []backup.Object{}
	}
	c.JSON(http.StatusOK, gin.H{"backups": objs, "count": len(objs), "status": s.cfg.Backups.Stats().Status()})
}

// verifyBackup serves POST /api/backups/:name/verify: every checksum, then
// a restore into a scratch hub that must come up and verify its audit
// chain. A corrupt archive is a 422 naming the entry at fault.
func (s *Server) verifyBackup(c *gin.Context) {
	name := c.Param("name")
	if err := backup.CheckName(name); err != nil {
		abort(c, Invalid("name", err.Error()))
		return
	}
	res, err := s.cfg.Backups.Verify(c.Request.Context(), name)
	if err != nil {
		s.audit(c, actionBackupVerified, "backup", name, map[string]any{"ok": false, "error": err.Error()})
		abort(c, err)
		return
	}
	s.audit(c, actionBackupVerified, "backup", name, map[string]any{"ok": true, "files": res.Checked})
	c.JSON(http.StatusOK, res)
}

// pruneBackups serves POST /api/backups/prune[?dry_run=true]: deletes the
// archives the retention does not keep.
func (s *Server) pruneBackups(c *gin.Context) {
	dry, err := strconv.ParseBool(c.DefaultQuery("dry_run", "false"))
	if err != nil {
		abort(c, Invalid("dry_run", "dry_run must be true or false"))
		return
	}
	keep, drop, err := s.cfg.Backups.Prune(c.Request.Context(), dry)
	if err != nil {
		abort(c, err)
		return
	}
	if !dry {
		names := make([]string, 0, len(drop))
		for _, o := range drop {
			names = append(names, o.Name)
		}
		s.audit(c, actionBackupsPruned, "backup", "", map[string]any{"deleted": names, "kept": len(keep)})
	}
	if keep == nil {
		keep = []backup.Object{}
	}
	if drop == nil {
		drop = []backup.Object{}
	}
	c.JSON(http.StatusOK, gin.H{"dry_run": dry, "keep": keep, "delete": drop})
}
