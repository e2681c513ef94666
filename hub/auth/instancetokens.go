package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/catalog"
)

// InstanceTokenID is the id of the API token the hub manages for an
// instance (see EnsureInstanceToken).
func InstanceTokenID(instanceID string) string { return "instance-" + instanceID }

// WellFormedAPIToken reports whether tok has the shape of an API token:
// APITokenPrefix then 43 base64url characters.
func WellFormedAPIToken(tok string) bool { return wellFormed(tok, APITokenPrefix) }

// EnsureInstanceToken makes sure the catalog holds the hub-managed,
// instance-scoped API token of instanceID whose secret is secret (the hub
// derives it, so it is given to the instance's runtime without being
// stored; only its SHA-256 is). The token is ScopeInstance, role VIEWER,
// created by no user, named after the instance, id InstanceTokenID. A
// token that exists with this hash, revoked or not, is left alone (a
// revoked one stays revoked: an operator's decision). Errors: ErrInvalid
// for a secret that is not a well-formed API token; catalog.ErrNotFound
// for an unknown instance; the Applier's errors.
func (s *Service) EnsureInstanceToken(ctx context.Context, instanceID, secret string) error {
	if !wellFormed(secret, APITokenPrefix) {
		return invalid("token", "an instance token must be %s followed by %d base64url characters", APITokenPrefix, tokenBody)
	}
	hash := hashToken(secret)
	if t, err := s.cat.APITokenByHash(hash); err == nil {
		if t.InstanceID != instanceID || scopeOf(t) != ScopeInstance {
			return fmt.Errorf("instance token of %s: the hash belongs to token %s", instanceID, t.ID)
		}
		return nil
	} else if !isNotFound(err) {
		return err
	}
	t := catalog.APIToken{ID: InstanceTokenID(instanceID), Name: "instance " + instanceID + " (managed by the hub)",
		Hash: hash, Scope: ScopeInstance, Role: catalog.RoleViewer, InstanceID: instanceID, CreatedAt: s.now().UTC()}
	_, err := apply[catalog.APIToken](ctx, s.ap, catalog.PutAPIToken(t, catalog.IfIndex(0)))
	if errors.Is(err, catalog.ErrConflict) {
		// Another round made it meanwhile, or a token of this id with
		// another hash exists (an old fleet secret): replace the latter.
		if cur, gerr := s.cat.APITokenByHash(hash); gerr == nil && cur.InstanceID == instanceID {
			return nil
		}
		_, err = apply[catalog.APIToken](ctx, s.ap, catalog.PutAPIToken(t))
	}
	if err != nil {
		return fmt.Errorf("instance token of %s: %w", instanceID, err)
	}
	return nil
}
