package nodes

import (
	"fmt"
	"path"
	"strings"
)

// PolicySetting is the catalog setting that holds the cluster's Policy.
const PolicySetting = "nodes/policy"

// MaxPolicyPatterns bounds each list.
const MaxPolicyPatterns = 500

// Policy is the cluster-wide list of node packages instances may install
// (ADMIN sets it). Patterns are package names, with * matching any run of
// characters within the name's last segment (path.Match), e.g.
// "node-red-contrib-*" or "@acme/*". A package on the deny-list is
// refused; with a non-empty allow-list, so is any package not on it.
type Policy struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// DeniedError says which list refused a package; its message names the
// list and its patterns.
type DeniedError struct {
	Name     string
	List     string // "deny" or "allow"
	Patterns []string
}

func (e *DeniedError) Error() string {
	if e.List == "deny" {
		return fmt.Sprintf("package %q is on the cluster's deny-list (%s)", e.Name, strings.Join(e.Patterns, ", "))
	}
	return fmt.Sprintf("package %q is not on the cluster's allow-list (%s)", e.Name, strings.Join(e.Patterns, ", "))
}

// Unwrap makes errors.Is(err, ErrDenied) hold.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// Check returns a *DeniedError when the policy refuses name.
func (p Policy) Check(name string) error {
	for _, pat := range p.Deny {
		if match(pat, name) {
			return &DeniedError{Name: name, List: "deny", Patterns: p.Deny}
		}
	}
	if len(p.Allow) == 0 {
		return nil
	}
	for _, pat := range p.Allow {
		if match(pat, name) {
			return nil
		}
	}
	return &DeniedError{Name: name, List: "allow", Patterns: p.Allow}
}

func match(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// Validate refuses a pattern that is not a (wildcard) package name, with a
// *FieldError naming it ("allow[2]").
func (p Policy) Validate() error {
	for list, pats := range map[string][]string{"allow": p.Allow, "deny": p.Deny} {
		if len(pats) > MaxPolicyPatterns {
			return invalid(list, "at most %d patterns", MaxPolicyPatterns)
		}
		for i, pat := range pats {
			field := fmt.Sprintf("%s[%d]", list, i)
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				return invalid(field, "%q is not a package name pattern", pat)
			}
			if err := CheckName(strings.ReplaceAll(pat, "*", "x")); err != nil {
				return invalid(field, "%q is not a package name pattern (lower case names, * for any characters)", pat)
			}
		}
	}
	return nil
}
