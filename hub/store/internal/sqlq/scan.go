package sqlq

import (
	"encoding/json"
	"fmt"
)

// JSONCol scans a nullable JSON text column into a json.RawMessage,
// byte for byte (NULL becomes nil). Both store implementations use it.
type JSONCol struct{ V *json.RawMessage }

// Scan implements sql.Scanner (and pgx's scanning of the same interface).
func (c JSONCol) Scan(src any) error {
	switch s := src.(type) {
	case nil:
		*c.V = nil
	case string:
		*c.V = []byte(s)
	case []byte:
		*c.V = append([]byte(nil), s...)
	default:
		return fmt.Errorf("JSON column holds %T", src)
	}
	return nil
}
