package instances

import (
	"encoding/json"
	"fmt"
)

// FlowCredentials are the node credentials of a flows document: node id →
// field → value (what Node-RED keeps in its encrypted flows_cred.json).
type FlowCredentials map[string]map[string]any

// flowCredentialsContext binds sealed flow credentials to their logical
// instance: its colors share them, another instance cannot open them.
func flowCredentialsContext(logicalID string) string { return "flow_credentials/" + logicalID }

// SealFlowCredentials seals the node credentials of a logical instance's
// flows as one value (catalog.Flows.Credentials); none seals to "".
func (s *Service) SealFlowCredentials(logicalID string, creds FlowCredentials) (string, error) {
	if len(creds) == 0 {
		return "", nil
	}
	b, err := json.Marshal(creds)
	if err != nil {
		return "", fmt.Errorf("flow credentials: %w", err)
	}
	sealed, err := s.seal.Seal(flowCredentialsContext(logicalID), string(b))
	if err != nil {
		return "", fmt.Errorf("seal flow credentials: %w", err)
	}
	return sealed, nil
}

// OpenFlowCredentials opens what SealFlowCredentials sealed for the
// logical instance; "" opens to none.
func (s *Service) OpenFlowCredentials(logicalID, sealed string) (FlowCredentials, error) {
	if sealed == "" {
		return nil, nil
	}
	pt, err := s.seal.Open(flowCredentialsContext(logicalID), sealed)
	if err != nil {
		return nil, fmt.Errorf("open flow credentials: %w", err)
	}
	var out FlowCredentials
	if err := json.Unmarshal([]byte(pt), &out); err != nil {
		return nil, fmt.Errorf("flow credentials: %w", err)
	}
	return out, nil
}
