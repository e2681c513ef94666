package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// statusMappers translate domain errors into API errors: abort tries them
// in this order and the first non-nil answer wins. This table is the one
// place where a package's errors are registered; the mappers of the
// shared packages are below, those of one resource's package sit beside
// its routes (alerts.go, backups.go, models.go, sync.go).
var statusMappers = []func(error) *Error{
	mapAlert,   // hub/alert
	mapBackup,  // hub/backup
	mapAuth,    // hub/auth
	mapStore,   // hub/store
	mapCatalog, // hub/catalog
	mapCluster, // hub/cluster
	mapNodeRED, // nodered
	mapModels,  // hub/models
	mapSync,    // hub/edgesync, syncproto
}

func mapAuth(err error) *Error {
	var inv *auth.InvalidError
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		msg := string(auth.ReasonOf(err))
		if msg == "" {
			msg = "authentication required"
		}
		return &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: msg}
	case errors.Is(err, auth.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
	case errors.As(err, &inv):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Message: inv.Error(), Field: inv.Field}
	}
	return nil
}

func mapStore(err error) *Error {
	var inv *store.InvalidError
	var gap *store.GapError
	switch {
	case errors.As(err, &gap):
		return &Error{Status: http.StatusConflict, Code: "sequence_gap", Field: "first_seq",
			Message: "batch starts at seq " + strconv.FormatInt(gap.FirstSeq, 10) + "; expected " + strconv.FormatInt(gap.Expected, 10)}
	case errors.Is(err, store.ErrChecksum):
		return &Error{Status: http.StatusBadRequest, Code: "checksum_mismatch", Message: err.Error(), Field: "records"}
	case errors.As(err, &inv):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Message: inv.Field + ": " + inv.Reason, Field: inv.Field}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}
	case errors.Is(err, store.ErrUnavailable):
		var ue *store.UnavailableError
		if errors.As(err, &ue) && ue.OutcomeUnknown {
			return &Error{Status: http.StatusServiceUnavailable, Code: "outcome_unknown", Message: "the data store failed over while committing and no primary answered since; read back before retrying"}
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the data store has no writable primary (a failover that is taking too long); nothing was written, retry shortly"}
	}
	return nil
}

func mapCatalog(err error) *Error {
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, catalog.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case errors.Is(err, catalog.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Message: err.Error()}
	}
	return nil
}

func mapCluster(err error) *Error {
	switch {
	case errors.Is(err, cluster.ErrCertRefused):
		return &Error{Status: http.StatusBadGateway, Code: "peer_certificate_refused", Message: "this hub and the control-plane leader do not trust each other's certificates (--cluster-ca, --cluster-cert); the change was not forwarded"}
	case errors.Is(err, cluster.ErrOutcomeUnknown) && errors.Is(err, cluster.ErrLeaderUnreachable):
		return &Error{Status: http.StatusServiceUnavailable, Code: "outcome_unknown", Message: "the connection to the leader broke while forwarding the change; read back before retrying"}
	case errors.Is(err, cluster.ErrLeaderUnreachable):
		return &Error{Status: http.StatusServiceUnavailable, Code: "leader_unreachable", Message: "this hub cannot reach the control-plane leader, so it cannot confirm a consistent read or forward a change; retry at another hub (GET /api/route), or read without ?consistent=1 (stale, see X-Redforge-Stale-Ms)"}
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader):
		return &Error{Status: http.StatusServiceUnavailable, Code: "no_leader", Message: "the control plane has no reachable leader right now; retry shortly"}
	case errors.Is(err, cluster.ErrShutdown):
		return &Error{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: "the hub is shutting down"}
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		return &Error{Status: http.StatusServiceUnavailable, Code: "outcome_unknown", Message: "leadership changed while applying the change; read back before retrying"}
	}
	return nil
}

func mapNodeRED(err error) *Error {
	var fe *nodered.FlowError
	switch {
	case errors.As(err, &fe):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_flows", Message: fe.Error(), Field: "flows"}
	case errors.Is(err, nodered.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "flows_conflict", Message: "the instance's flows changed since they were read; read them again"}
	case errors.Is(err, nodered.ErrUnavailable):
		return &Error{Status: http.StatusBadGateway, Code: "instance_unavailable", Message: "the Node-RED instance did not answer"}
	}
	return nil
}
