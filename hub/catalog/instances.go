package catalog

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Placement says where an instance may run.
type Placement string

// Placements.
const (
	// PlacementPinned keeps an instance in its region.
	PlacementPinned Placement = "pinned"
	// PlacementFailover lets an instance move to the next region when its
	// region is down.
	PlacementFailover Placement = "failover"
)

// DesiredState is the state the fleet reconciler drives an instance to.
type DesiredState string

// Desired states.
const (
	DesiredRunning DesiredState = "running"
	DesiredStopped DesiredState = "stopped"
)

// Resources are an instance's limits.
type Resources struct {
	CPU      float64 `json:"cpu"`       // cores
	MemoryMB int     `json:"memory_mb"` // mebibytes
}

// Observed is what the fleet last saw of an instance. Only
// SetInstanceObserved changes it; UpsertInstance keeps the stored value.
type Observed struct {
	Status    string    `json:"status,omitempty"`     // set by hub/fleet, e.g. running, failed
	RuntimeID string    `json:"runtime_id,omitempty"` // container id (docker) or pid (process)
	Port      int       `json:"port,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Message   string    `json:"message,omitempty"`
}

// Instance is a managed Node-RED instance: its desired configuration and
// state, and what the fleet last observed of it.
type Instance struct {
	ID             string       `json:"id"`
	Name           string       `json:"name"` // unique, case-insensitive
	Region         string       `json:"region,omitempty"`
	Placement      Placement    `json:"placement,omitempty"`
	Driver         string       `json:"driver,omitempty"` // docker | process
	Image          string       `json:"image,omitempty"`
	NodeREDVersion string       `json:"node_red_version,omitempty"`
	DesiredState   DesiredState `json:"desired_state,omitempty"`
	Resources      Resources    `json:"resources"`
	// Replicas is how many runtimes serve the instance (1 when 0), each
	// placed on a hub of its region by the scheduler (allocations).
	Replicas int `json:"replicas,omitempty"`
	// RestartGen counts operator starts and restarts: every hub running a
	// replica restarts it (clearing its crash history) when it changes.
	RestartGen uint64 `json:"restart_gen,omitempty"`
	// Live is the row that serves this logical instance: "" (itself) or a
	// deployment's color row. Only SetInstanceLive changes it.
	Live string            `json:"live,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
	// SecretEnv is runtime env like Env, each value sealed by the hub
	// (hub/secrets); the API returns only its keys.
	SecretEnv    map[string]string `json:"secret_env,omitempty"`
	FlowsVersion string            `json:"flows_version,omitempty"`
	Observed     Observed          `json:"observed"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	// Nodes are the npm packages of Node-RED nodes installed into every
	// runtime of the row, before it starts (hub/nodes); a deployment's
	// green row takes its node set from the live row, or the new one of a
	// node install.
	Nodes []NodePackage `json:"nodes,omitempty"`
	Indexes
}

func (i *Instance) primaryKey() string { return i.ID }

// ReplicaCount is the number of replicas the instance wants: Replicas, or
// 1 when it is 0.
func (i Instance) ReplicaCount() int { return max(i.Replicas, 1) }

func (i *Instance) clone() *Instance {
	c := *i
	c.Env = maps.Clone(i.Env)
	c.SecretEnv = maps.Clone(i.SecretEnv)
	c.Nodes = slices.Clone(i.Nodes)
	return &c
}

// Sources of a NodePackage.
const (
	// NodeSourceRegistry: every hub fetches the package from the npm
	// registry it reaches.
	NodeSourceRegistry = "registry"
	// NodeSourceUpload: a tarball uploaded to a hub (for sites without a
	// registry); the other hubs fetch it from that hub.
	NodeSourceUpload = "upload"
)

// NodePackage is one npm package of Node-RED nodes an instance runs.
type NodePackage struct {
	Name    string `json:"name"`    // npm name, e.g. node-red-contrib-foo or @scope/bar
	Version string `json:"version"` // an exact version
	Source  string `json:"source"`  // NodeSourceRegistry or NodeSourceUpload
	// SHA256 is the hex SHA-256 of an uploaded tarball, which names it.
	SHA256 string `json:"sha256,omitempty"`
	// Hub is the hub an uploaded tarball was uploaded to.
	Hub string `json:"hub,omitempty"`
}

func instancesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableInstances, Indexes: map[string]*memdb.IndexSchema{
		"id":     idIndex("ID"),
		"name":   uniqueIndex("name", "Name"),
		"region": refIndex("region", "Region"),
	}}
}

// checkInstance enforces the instance invariants that hold for any row.
func checkInstance(w *write, inst *Instance) error {
	if inst.ID == "" || inst.Name == "" {
		return fmt.Errorf("instance: id and name are required: %w", ErrInvalid)
	}
	if inst.Replicas < 0 || inst.Replicas > MaxReplicas {
		return fmt.Errorf("instance %q: replicas %d out of range 0-%d: %w", inst.ID, inst.Replicas, MaxReplicas, ErrInvalid)
	}
	return w.unique(tableInstances, "name", inst.Name, inst.ID)
}

// UpsertInstance returns the command that creates the instance or replaces
// the stored one with the same ID. On replace, CreatedAt and Observed are
// kept from the stored row. Errors: ErrInvalid without an ID or name,
// ErrConflict when another instance has the name or an IfIndex check fails.
// The result is the stored Instance.
func UpsertInstance(inst Instance, opts ...PutOption) Command {
	return newPut(CmdUpsertInstance, inst, opts)
}

func applyUpsertInstance(w *write, b putBody[Instance]) (any, error) {
	inst := &b.Row
	old := first[Instance](w.tx, nil, tableInstances, "id", inst.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("upsert instance %q: %w", inst.ID, err)
	}
	if err := checkInstance(w, inst); err != nil {
		return nil, fmt.Errorf("upsert instance %q: %w", inst.ID, err)
	}
	if old != nil {
		inst.CreatedAt, inst.Observed, inst.Live = old.CreatedAt, old.Observed, old.Live
	} else {
		inst.Live = ""
	}
	return insert(w, tableInstances, inst, old)
}

// liveBody is the payload of SetInstanceLive.
type liveBody struct {
	ID   string `json:"id"`
	Live string `json:"live"`
}

// SetInstanceLive returns the command that makes row serve the logical
// instance id ("" or id itself: its own row). Errors: ErrNotFound for a
// missing instance or row.
func SetInstanceLive(id, row string) Command {
	return newCommand(CmdSetInstanceLive, liveBody{ID: id, Live: row})
}

func applySetInstanceLive(w *write, b liveBody) (any, error) {
	old := first[Instance](w.tx, nil, tableInstances, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("set live row of %q: %w", b.ID, ErrNotFound)
	}
	if b.Live == b.ID {
		b.Live = ""
	}
	if b.Live != "" {
		if err := w.exists(tableInstances, b.Live); err != nil {
			return nil, fmt.Errorf("set live row of %q: %w", b.ID, err)
		}
	}
	inst := old.clone()
	inst.Live = b.Live
	return insert(w, tableInstances, inst, old)
}

// DeleteInstance returns the command that deletes an instance together with
// its deployments, the API tokens scoped to it, its allocations, flows,
// credentials and move record. Errors: ErrNotFound.
func DeleteInstance(id string) Command {
	return newCommand(CmdDeleteInstance, keyBody{Key: id})
}

func applyDeleteInstance(w *write, b keyBody) (any, error) {
	inst := first[Instance](w.tx, nil, tableInstances, "id", b.Key)
	if inst == nil {
		return nil, fmt.Errorf("delete instance %q: %w", b.Key, ErrNotFound)
	}
	for _, d := range list[Deployment](w.tx, nil, tableDeployments, "instance", b.Key) {
		w.remove(tableDeployments, &d)
	}
	deleteInstanceSpecs(w, b.Key)
	deleteInstanceGreenLogs(w, b.Key)
	for _, t := range list[APIToken](w.tx, nil, tableAPITokens, "instance", b.Key) {
		w.remove(tableAPITokens, &t)
	}
	for _, a := range list[Allocation](w.tx, nil, tableAllocations, "instance", b.Key) {
		w.remove(tableAllocations, &a)
	}
	for _, sn := range list[InstanceSnapshot](w.tx, nil, tableSnapshots, "instance", b.Key) {
		w.remove(tableSnapshots, &sn)
	}
	for _, t := range []string{tableFlows, tableCredentials, tableMoves} {
		if obj, err := w.tx.First(t, "id", b.Key); err == nil && obj != nil {
			w.remove(t, obj)
		}
	}
	w.remove(tableInstances, inst)
	return nil, nil
}

// observedBody is the payload of SetInstanceObserved.
type observedBody struct {
	ID       string   `json:"id"`
	Observed Observed `json:"observed"`
}

// SetInstanceObserved returns the command that records what the fleet
// observed of an instance, leaving its desired configuration alone.
// Errors: ErrNotFound. The result is the stored Instance.
func SetInstanceObserved(id string, obs Observed) Command {
	return newCommand(CmdSetInstanceObserved, observedBody{ID: id, Observed: obs})
}

func applySetInstanceObserved(w *write, b observedBody) (any, error) {
	old := first[Instance](w.tx, nil, tableInstances, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("set observed state of instance %q: %w", b.ID, ErrNotFound)
	}
	inst := old.clone()
	inst.Observed = b.Observed
	return insert(w, tableInstances, inst, old)
}

// Instance returns the instance with the given ID, or ErrNotFound.
func (s *State) Instance(id string) (Instance, error) {
	return get[Instance](s.read(nil), nil, tableInstances, id)
}

// InstanceByName returns the instance with the given name (compared without
// regard to case), or ErrNotFound.
func (s *State) InstanceByName(name string) (Instance, error) {
	inst := first[Instance](s.read(nil), nil, tableInstances, "name", name)
	if inst == nil {
		return Instance{}, fmt.Errorf("instance named %q: %w", name, ErrNotFound)
	}
	return *inst.clone(), nil
}

// Instances returns every instance, ordered by ID.
func (s *State) Instances() []Instance {
	insts, _ := s.readInstances(nil)
	return insts
}

func (s *State) readInstances(ws memdb.WatchSet) ([]Instance, uint64) {
	tx := s.read(ws)
	return list[Instance](tx, ws, tableInstances, "id"), indexOf(tx, tableInstances)
}

// InstancesInRegion returns the instances whose Region is region, by ID.
func (s *State) InstancesInRegion(region string) []Instance {
	return list[Instance](s.read(nil), nil, tableInstances, "region", region)
}

// WatchInstances returns every instance, the instances table index at the
// time of the read, and a channel closed when the list may have changed.
// The channel is not closed when ctx ends; select on ctx.Done() as well.
func (s *State) WatchInstances(ctx context.Context) ([]Instance, uint64, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	insts, index := s.readInstances(ws)
	return insts, index, watch(ctx, ws)
}

// WatchInstance returns the instance with the given ID and a channel closed
// when it may have changed. When it does not exist the error is ErrNotFound
// and the channel is closed when it may have been created.
func (s *State) WatchInstance(ctx context.Context, id string) (Instance, <-chan struct{}, error) {
	ws := memdb.NewWatchSet()
	inst, err := get[Instance](s.read(ws), ws, tableInstances, id)
	return inst, watch(ctx, ws), err
}
