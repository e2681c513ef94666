package catalog

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Credentials are the secrets of one catalog row's runtimes: random per
// row, never derived from a shared secret, so one runtime's compromise
// exposes nothing of another's. Every field is sealed by the hub (see
// hub/secrets) before it is applied: the Raft log, snapshots and backups
// hold only ciphertext. The catalog stores them opaquely.
type Credentials struct {
	InstanceID string `json:"instance_id"`
	// AdminPassword is the Node-RED adminAuth password the hub logs in with.
	AdminPassword string `json:"admin_password"`
	// MQTTPassword is the runtime's password on the hub's MQTT bus (its
	// username is the row id).
	MQTTPassword string `json:"mqtt_password"`
	// Token is the logical instance's REDFORGE_TOKEN (empty on color rows,
	// which use their logical instance's).
	Token string `json:"token,omitempty"`
	Indexes
}

func (c *Credentials) primaryKey() string { return c.InstanceID }

func (c *Credentials) clone() *Credentials { d := *c; return &d }

func credentialsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableCredentials, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("InstanceID"),
	}}
}

func checkCredentials(w *write, c *Credentials) error {
	if c.InstanceID == "" || c.AdminPassword == "" || c.MQTTPassword == "" {
		return fmt.Errorf("credentials: instance_id, admin_password and mqtt_password are required: %w", ErrInvalid)
	}
	return w.exists(tableInstances, c.InstanceID)
}

// PutCredentials returns the command that sets a row's credentials (with
// IfIndex(0) to create them only once). Errors: ErrInvalid, ErrNotFound for
// a missing row, ErrConflict when an IfIndex check fails.
func PutCredentials(c Credentials, opts ...PutOption) Command {
	return newPut(CmdPutCredentials, c, opts)
}

func applyPutCredentials(w *write, b putBody[Credentials]) (any, error) {
	c := &b.Row
	old := first[Credentials](w.tx, nil, tableCredentials, "id", c.InstanceID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put credentials of %q: %w", c.InstanceID, err)
	}
	if err := checkCredentials(w, c); err != nil {
		return nil, fmt.Errorf("put credentials: %w", err)
	}
	return insert(w, tableCredentials, c, old)
}

// InstanceCredentials returns the (sealed) credentials of a row, or
// ErrNotFound.
func (s *State) InstanceCredentials(instanceID string) (Credentials, error) {
	return get[Credentials](s.read(nil), nil, tableCredentials, instanceID)
}
