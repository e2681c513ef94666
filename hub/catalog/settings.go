package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Setting is a cluster-wide setting: a key and a JSON value.
type Setting struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	Indexes
}

func (s *Setting) primaryKey() string { return s.Key }

func (s *Setting) clone() *Setting {
	c := *s
	c.Value = bytes.Clone(s.Value)
	return &c
}

func settingsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableSettings, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("Key"),
	}}
}

func checkSetting(_ *write, s *Setting) error {
	if s.Key == "" {
		return fmt.Errorf("setting: key is required: %w", ErrInvalid)
	}
	return nil
}

// PutSetting returns the command that sets key to the JSON encoding of val
// (a json.RawMessage is taken as is). A val that cannot be encoded makes the
// command fail with ErrInvalid (see Command.Err). Errors: ErrInvalid without
// a key; ErrConflict when an IfIndex check fails. The result is the stored
// Setting.
func PutSetting(key string, val any, opts ...PutOption) Command {
	raw, err := json.Marshal(val)
	if err != nil {
		return Command{Type: CmdPutSetting, err: fmt.Errorf("build %s %q: %v: %w", CmdPutSetting, key, err, ErrInvalid)}
	}
	return newPut(CmdPutSetting, Setting{Key: key, Value: raw}, opts)
}

func applyPutSetting(w *write, b putBody[Setting]) (any, error) {
	if isLegacyKey(b.Row.Key) {
		return putLegacy(w, b)
	}
	s := &b.Row
	old := first[Setting](w.tx, nil, tableSettings, "id", s.Key)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put setting %q: %w", s.Key, err)
	}
	if err := checkSetting(w, s); err != nil {
		return nil, fmt.Errorf("put setting: %w", err)
	}
	return insert(w, tableSettings, s, old)
}

// DeleteSetting returns the command that deletes a setting. Errors: ErrNotFound.
func DeleteSetting(key string) Command {
	return newCommand(CmdDeleteSetting, keyBody{Key: key})
}

func applyDeleteSetting(w *write, b keyBody) (any, error) {
	if isLegacyKey(b.Key) {
		return deleteLegacy(w, b.Key)
	}
	s := first[Setting](w.tx, nil, tableSettings, "id", b.Key)
	if s == nil {
		return nil, fmt.Errorf("delete setting %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableSettings, s)
	return nil, nil
}

// Setting returns the setting with the given key, or ErrNotFound.
func (s *State) Setting(key string) (Setting, error) {
	return get[Setting](s.read(nil), nil, tableSettings, key)
}

// SettingValue decodes the value of the setting with the given key into v.
// Errors: ErrNotFound; ErrInvalid when the value does not decode into v.
func (s *State) SettingValue(key string, v any) error {
	st, err := s.Setting(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(st.Value, v); err != nil {
		return fmt.Errorf("setting %q: %v: %w", key, err, ErrInvalid)
	}
	return nil
}

// Settings returns every setting, ordered by key.
func (s *State) Settings() []Setting {
	return list[Setting](s.read(nil), nil, tableSettings, "id")
}

// WatchSetting returns the setting with the given key and a channel closed
// when it may have changed (or been created, after ErrNotFound).
func (s *State) WatchSetting(ctx context.Context, key string) (Setting, <-chan struct{}, error) {
	ws := memdb.NewWatchSet()
	st, err := get[Setting](s.read(ws), ws, tableSettings, key)
	return st, watch(ctx, ws), err
}
