package backup

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
)

// ParseRecipients reads age recipients from spec: a comma-separated list
// of age1… recipients, or the path of a file of them (one a line, #
// comments allowed).
func ParseRecipients(spec string) ([]age.Recipient, error) {
	text := strings.ReplaceAll(spec, ",", "\n")
	if !strings.HasPrefix(strings.TrimSpace(spec), "age1") {
		b, err := os.ReadFile(spec)
		if err != nil {
			return nil, fmt.Errorf("age recipients: %w", err)
		}
		text = string(b)
	}
	rs, err := age.ParseRecipients(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("age recipients: %w", err)
	}
	if len(rs) == 0 {
		return nil, errors.New("age recipients: none given")
	}
	return rs, nil
}

// ReadIdentities reads an age identity file (AGE-SECRET-KEY-1…).
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("age identity %s: %w", path, err)
	}
	return ids, nil
}
