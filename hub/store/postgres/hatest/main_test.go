package hatest

import (
	"os"
	"testing"

	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/hub/catalog"
)

// TestMain lifts the API's per-role request limit (ADMIN: 1000 a minute)
// before any hub starts: the writers here drive as many requests as a
// failover lets through, and a slow switchover would otherwise end in 429s
// that say nothing about the store.
func TestMain(m *testing.M) {
	api.RoleRequestsPerMinute[catalog.RoleAdmin] = 1 << 30
	os.Exit(m.Run())
}
