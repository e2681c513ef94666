package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// CommandType names a kind of catalog change. The numbers are part of the
// Raft log format: never renumber or reuse one.
type CommandType uint8

// Command types.
const (
	CmdUpsertInstance        CommandType = 1
	CmdDeleteInstance        CommandType = 2
	CmdSetInstanceObserved   CommandType = 3
	CmdPutDeployment         CommandType = 4
	CmdDeleteDeployment      CommandType = 5
	CmdPutUser               CommandType = 6
	CmdDeleteUser            CommandType = 7
	CmdPutAPIToken           CommandType = 8
	CmdRevokeAPIToken        CommandType = 9
	CmdDeleteAPIToken        CommandType = 10
	CmdPutEdge               CommandType = 11
	CmdDeleteEdge            CommandType = 12
	CmdRecordEdgeHeartbeat   CommandType = 13
	CmdPutEnrollmentToken    CommandType = 14
	CmdDeleteEnrollmentToken CommandType = 15
	CmdEnrollEdge            CommandType = 16
	CmdPutRegion             CommandType = 17
	CmdDeleteRegion          CommandType = 18
	CmdPutSetting            CommandType = 19
	CmdDeleteSetting         CommandType = 20
	// 21-40: placement and runtime credentials.
	CmdRegisterHub           CommandType = 21
	CmdSetHubState           CommandType = 22
	CmdDeleteHub             CommandType = 23
	CmdApplyPlan             CommandType = 24
	CmdSetAllocationObserved CommandType = 25
	CmdPutFlows              CommandType = 26
	CmdPutCredentials        CommandType = 27
	CmdPutMove               CommandType = 28
	CmdDeleteMove            CommandType = 29
	CmdSetHubDraining        CommandType = 30
	CmdSetInstanceLive       CommandType = 31
	// 32-40: session, deployment spec, audit anchor and edge config state
	// (authstate.go, specs.go, anchors.go, edgeconfigs.go), once settings.
	CmdInitSigningKey        CommandType = 32
	CmdRotateSigningKey      CommandType = 33
	CmdPutRefreshToken       CommandType = 34
	CmdRevoke                CommandType = 35
	CmdBumpSessionGeneration CommandType = 36
	CmdReapAuth              CommandType = 37
	CmdPutDeploymentSpec     CommandType = 38
	CmdPutAuditAnchor        CommandType = 39
	CmdPutEdgeConfig         CommandType = 40
	// 71-80: the model marketplace (hub/models).
	CmdPutLLMProvider    CommandType = 71
	CmdDeleteLLMProvider CommandType = 72
	CmdPutModel          CommandType = 73
	CmdDeleteModel       CommandType = 74
	CmdPutLLMRoute       CommandType = 75
	CmdDeleteLLMRoute    CommandType = 76
	CmdPutLLMBudget      CommandType = 77
	CmdDeleteLLMBudget   CommandType = 78
	CmdPutBenchmark      CommandType = 79
	CmdDeleteBenchmark   CommandType = 80
	// 81-82: a failed green's kept logs (greenlogs.go), once settings.
	CmdPutGreenLogs    CommandType = 81
	CmdDeleteGreenLogs CommandType = 82
)

// 41-50: Node-RED as its users know it (editor, node packages, snapshots).
const (
	CmdPutInstanceSnapshot    CommandType = 41
	CmdDeleteInstanceSnapshot CommandType = 42
)

// ResultTypes returns a zero value of every type an applied command
// returns as its result, so that a transport between hubs (gob) can carry
// results with their concrete type. TestResultTypesAreListed keeps it
// complete.
func ResultTypes() []any {
	return []any{Instance{}, Deployment{}, Edge{}, EnrollmentToken{}, Region{}, Setting{}, APIToken{}, User{},
		Hub{}, Allocation{}, Flows{}, Credentials{}, Move{}, AlertRule{}, Alert{}, InstanceSnapshot{},
		LLMProvider{}, Model{}, LLMRoute{}, LLMBudget{}, Benchmark{},
		SigningKey{}, RefreshToken{}, SessionGeneration{}, AuthReaped{}, DeploymentSpec{}, AuditAnchor{}, EdgeConfig{},
		GreenLogs{}}
}

// String returns the command type's name, or its number when unknown.
func (t CommandType) String() string {
	if spec, ok := commandSpecs[t]; ok {
		return spec.name
	}
	return "command type " + strconv.Itoa(int(t))
}

// Command is one typed, versioned change to the catalog, as carried in a
// Raft log entry. Build commands with the constructors (UpsertInstance,
// DeleteUser, PutSetting, …) rather than by hand.
type Command struct {
	Type    CommandType
	Version uint8           // payload version; see DESIGN.md for the upgrade rule
	Payload json.RawMessage // the payload, JSON
	err     error           // a construction error, reported by Encode and Apply
}

// Err returns the error met while building the command (for example a
// setting value that cannot be encoded as JSON), or nil.
func (c Command) Err() error { return c.err }

// encodingV1 is the first byte of every encoded command. A different first
// byte would mark a different encoding (for example a binary payload).
const encodingV1 = 0x01

// Encode returns the command's wire form: the encoding byte, the type, the
// version, then the JSON payload. It returns the construction error, if any,
// and ErrInvalid for an unknown type, an unsupported version or a payload
// that DecodeCommand would refuse: what Encode accepts, every hub decodes.
func (c Command) Encode() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	spec, err := specFor(c.Type, c.Version)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	if _, err := spec.decode(c.Payload); err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	b := make([]byte, 0, 3+len(c.Payload))
	b = append(b, encodingV1, byte(c.Type), c.Version)
	return append(b, c.Payload...), nil
}

// DecodeCommand parses an encoded command and checks that this binary can
// apply it: known encoding, type and version, and a payload that decodes
// into the type's payload. Every failure wraps ErrInvalid; it never panics.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) < 3 {
		return Command{}, fmt.Errorf("decode command: %d bytes, want at least 3: %w", len(b), ErrInvalid)
	}
	if b[0] != encodingV1 {
		return Command{}, fmt.Errorf("decode command: unknown encoding %#x: %w", b[0], ErrInvalid)
	}
	c := Command{Type: CommandType(b[1]), Version: b[2], Payload: json.RawMessage(bytes.Clone(b[3:]))}
	spec, err := specFor(c.Type, c.Version)
	if err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	if _, err := spec.decode(c.Payload); err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	return c, nil
}

// commandSpec is how this binary decodes and applies one command type.
type commandSpec struct {
	name    string
	version uint8 // the newest payload version understood
	decode  func(json.RawMessage) (any, error)
	apply   func(w *write, body any) (any, error)
}

// spec builds a commandSpec whose payload is the JSON form of B.
func spec[B any](name string, version uint8, apply func(*write, B) (any, error)) commandSpec {
	return commandSpec{
		name:    name,
		version: version,
		decode: func(p json.RawMessage) (any, error) {
			var body B
			if err := decodeStrict(p, &body); err != nil {
				return nil, fmt.Errorf("%s payload: %v: %w", name, err, ErrInvalid)
			}
			return body, nil
		},
		apply: func(w *write, body any) (any, error) { return apply(w, body.(B)) },
	}
}

var commandSpecs map[CommandType]commandSpec

func init() {
	commandSpecs = map[CommandType]commandSpec{
		CmdUpsertInstance:        spec("upsert_instance", 3, applyUpsertInstance), // v2: replicas; v3: nodes
		CmdDeleteInstance:        spec("delete_instance", 1, applyDeleteInstance),
		CmdSetInstanceObserved:   spec("set_instance_observed", 1, applySetInstanceObserved),
		CmdPutDeployment:         spec("put_deployment", 1, applyPutDeployment),
		CmdDeleteDeployment:      spec("delete_deployment", 1, applyDeleteDeployment),
		CmdPutUser:               spec("put_user", 1, applyPutUser),
		CmdDeleteUser:            spec("delete_user", 1, applyDeleteUser),
		CmdPutAPIToken:           spec("put_api_token", 1, applyPutAPIToken),
		CmdRevokeAPIToken:        spec("revoke_api_token", 1, applyRevokeAPIToken),
		CmdDeleteAPIToken:        spec("delete_api_token", 1, applyDeleteAPIToken),
		CmdPutEdge:               spec("put_edge", 1, applyPutEdge),
		CmdDeleteEdge:            spec("delete_edge", 1, applyDeleteEdge),
		CmdRecordEdgeHeartbeat:   spec("record_edge_heartbeat", 1, applyRecordEdgeHeartbeat),
		CmdPutEnrollmentToken:    spec("put_enrollment_token", 1, applyPutEnrollmentToken),
		CmdDeleteEnrollmentToken: spec("delete_enrollment_token", 1, applyDeleteEnrollmentToken),
		CmdEnrollEdge:            spec("enroll_edge", 1, applyEnrollEdge),
		CmdPutRegion:             spec("put_region", 1, applyPutRegion),
		CmdDeleteRegion:          spec("delete_region", 1, applyDeleteRegion),
		CmdPutSetting:            spec("put_setting", 1, applyPutSetting),
		CmdDeleteSetting:         spec("delete_setting", 1, applyDeleteSetting),
		CmdRegisterHub:           spec("register_hub", 1, applyRegisterHub),
		CmdSetHubState:           spec("set_hub_state", 1, applySetHubState),
		CmdDeleteHub:             spec("delete_hub", 1, applyDeleteHub),
		CmdApplyPlan:             spec("apply_plan", 1, applyPlan),
		CmdSetAllocationObserved: spec("set_allocation_observed", 1, applySetAllocationObserved),
		CmdPutFlows:              spec("put_flows", 2, applyPutFlows), // v2: credentials
		CmdPutCredentials:        spec("put_credentials", 1, applyPutCredentials),
		CmdPutMove:               spec("put_move", 1, applyPutMove),
		CmdDeleteMove:            spec("delete_move", 1, applyDeleteMove),
		CmdSetHubDraining:        spec("set_hub_draining", 1, applySetHubDraining),
		CmdSetInstanceLive:       spec("set_instance_live", 1, applySetInstanceLive),
		// 32-40: once settings (authstate.go, specs.go, anchors.go, edgeconfigs.go)
		CmdInitSigningKey:        spec("init_signing_key", 1, applyInitSigningKey),
		CmdRotateSigningKey:      spec("rotate_signing_key", 1, applyRotateSigningKey),
		CmdPutRefreshToken:       spec("put_refresh_token", 1, applyPutRefreshToken),
		CmdRevoke:                spec("revoke", 1, applyRevoke),
		CmdBumpSessionGeneration: spec("bump_session_generation", 1, applyBumpSessionGeneration),
		CmdReapAuth:              spec("reap_auth", 1, applyReapAuth),
		CmdPutDeploymentSpec:     spec("put_deployment_spec", 1, applyPutDeploymentSpec),
		CmdPutAuditAnchor:        spec("put_audit_anchor", 1, applyPutAuditAnchor),
		CmdPutEdgeConfig:         spec("put_edge_config", 1, applyPutEdgeConfig),
		// 81-82: a failed green's kept logs (greenlogs.go)
		CmdPutGreenLogs:    spec("put_green_logs", 1, applyPutGreenLogs),
		CmdDeleteGreenLogs: spec("delete_green_logs", 1, applyDeleteGreenLogs),
		// 51-60: alerting (alerts.go)
		CmdPutAlertRule:     spec("put_alert_rule", 1, applyPutAlertRule),
		CmdDeleteAlertRule:  spec("delete_alert_rule", 1, applyDeleteAlertRule),
		CmdPutAlert:         spec("put_alert", 1, applyPutAlert),
		CmdSetAlertDelivery: spec("set_alert_delivery", 1, applySetAlertDelivery),
		CmdDeleteAlerts:     spec("delete_alerts", 1, applyDeleteAlerts),

		CmdPutInstanceSnapshot:    spec("put_instance_snapshot", 1, applyPutInstanceSnapshot),
		CmdDeleteInstanceSnapshot: spec("delete_instance_snapshot", 1, applyDeleteInstanceSnapshot),
		CmdPutLLMProvider:         spec("put_llm_provider", 1, applyPutLLMProvider),
		CmdDeleteLLMProvider:      spec("delete_llm_provider", 1, applyDeleteLLMProvider),
		CmdPutModel:               spec("put_model", 1, applyPutModel),
		CmdDeleteModel:            spec("delete_model", 1, applyDeleteModel),
		CmdPutLLMRoute:            spec("put_llm_route", 1, applyPutLLMRoute),
		CmdDeleteLLMRoute:         spec("delete_llm_route", 1, applyDeleteLLMRoute),
		CmdPutLLMBudget:           spec("put_llm_budget", 1, applyPutLLMBudget),
		CmdDeleteLLMBudget:        spec("delete_llm_budget", 1, applyDeleteLLMBudget),
		CmdPutBenchmark:           spec("put_benchmark", 1, applyPutBenchmark),
		CmdDeleteBenchmark:        spec("delete_benchmark", 1, applyDeleteBenchmark),
	}
}

func specFor(t CommandType, version uint8) (commandSpec, error) {
	spec, ok := commandSpecs[t]
	switch {
	case !ok:
		return commandSpec{}, fmt.Errorf("unknown command type %d (written by a newer hub? upgrade this one): %w", t, ErrInvalid)
	case version == 0:
		return commandSpec{}, fmt.Errorf("%s: version 0: %w", spec.name, ErrInvalid)
	case version > spec.version:
		return commandSpec{}, fmt.Errorf("%s: version %d is newer than this hub understands (%d); upgrade this hub: %w", spec.name, version, spec.version, ErrInvalid)
	}
	return spec, nil
}

// applyCommand decodes cmd's payload and applies it within w.
func applyCommand(w *write, cmd Command) (any, error) {
	if cmd.err != nil {
		return nil, cmd.err
	}
	spec, err := specFor(cmd.Type, cmd.Version)
	if err != nil {
		return nil, err
	}
	body, err := spec.decode(cmd.Payload)
	if err != nil {
		return nil, err
	}
	return spec.apply(w, body)
}

// newCommand builds a command of the newest version of t around body.
func newCommand(t CommandType, body any) Command {
	c := Command{Type: t, Version: commandSpecs[t].version}
	p, err := json.Marshal(body)
	if err != nil {
		c.err = fmt.Errorf("build %s: %v: %w", t, err, ErrInvalid)
		return c
	}
	c.Payload = p
	return c
}

// PutOption adjusts a put command.
type PutOption func(*putOptions)

type putOptions struct{ ifIndex *uint64 }

// IfIndex makes a put conditional (compare-and-set): with 0 the row must not
// exist yet; otherwise the stored row's ModifyIndex must equal index. A
// failed check is ErrConflict.
func IfIndex(index uint64) PutOption {
	return func(o *putOptions) { o.ifIndex = &index }
}

// putBody is the payload of every put command.
type putBody[T any] struct {
	Row     T       `json:"row"`
	IfIndex *uint64 `json:"if_index,omitempty"`
}

func newPut[T any](t CommandType, r T, opts []PutOption) Command {
	var o putOptions
	for _, opt := range opts {
		opt(&o)
	}
	return newCommand(t, putBody[T]{Row: r, IfIndex: o.ifIndex})
}

// keyBody is the payload of commands that name one row.
type keyBody struct {
	Key string `json:"key"`
}

// decodeStrict decodes exactly one JSON value from p into v, refusing
// unknown fields: a field this binary does not know means a payload version
// mismatch, which must fail loudly rather than be silently dropped (dropping
// it would make hubs on different binaries compute different states).
func decodeStrict(p []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
