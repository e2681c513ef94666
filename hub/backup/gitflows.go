package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
)

// The flows mirror: every flows version deployed to an instance (PUT
// flows or a blue-green deployment) and every edge config version is
// committed by the leader to a Git repository in its data dir, with a
// message naming the instance, the user and the deployment, and tagged
// <instance>/v<N> (and deploy/<deployment id> for a deployment); the repo
// is pushed to a configured remote. A push that fails is retried with
// backoff and never blocks a deployment: the mirror runs beside
// deployments, reading what they recorded in the store and the catalog.
//
// Layout: instances/<name>/flows.json, edges/<name>/flows.json and
// .redforge/versions.json (the last version committed per instance and
// edge id, which tells a new leader where the mirror stands).

// GitCatalog is what the mirror reads of the catalog.
type GitCatalog interface {
	Instances() []catalog.Instance
	Instance(id string) (catalog.Instance, error)
	InstanceByName(name string) (catalog.Instance, error)
	WatchFlows(ctx context.Context) ([]catalog.Flows, <-chan struct{})
	Deployments(instanceID string) []catalog.Deployment
	Edges() []catalog.Edge
	Setting(key string) (catalog.Setting, error)
	TableIndex(table string) uint64
}

// GitStore is what the mirror reads of the store.
type GitStore interface {
	ListFlowsVersions(ctx context.Context, f store.FlowsVersionFilter) ([]store.FlowsVersion, error)
	GetFlowsVersion(ctx context.Context, instanceID string, version int64) (store.FlowsVersion, error)
}

// GitConfig configures the mirror.
type GitConfig struct {
	Dir    string // the repository (a work tree), created if missing
	Remote string // pushed to and fetched from when set
	// Interval is the longest wait between two syncs (changes wake it).
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// GitMirror keeps the flows repository. Run it on every hub; it acts on
// the leader only.
type GitMirror struct {
	cfg      GitConfig
	cat      GitCatalog
	st       GitStore
	isLeader func() bool

	mu       sync.Mutex
	repo     *git.Repository
	state    gitState
	pushWant bool
	pushErr  error
	pushFail int
	nextPush time.Time
	leading  bool
	kick     chan struct{}
}

type gitState struct {
	Instances map[string]int64  `json:"instances"` // instance id → last version committed
	Edges     map[string]uint64 `json:"edges"`     // edge id → last config version committed
}

// Default mirror tunables.
const (
	DefaultGitInterval = 30 * time.Second
	gitStateFile       = ".redforge/versions.json"
	gitBranch          = "main"
)

// NewGitMirror returns a mirror; it does no I/O until Run.
func NewGitMirror(cfg GitConfig, cat GitCatalog, st GitStore, isLeader func() bool) *GitMirror {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultGitInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &GitMirror{cfg: cfg, cat: cat, st: st, isLeader: isLeader, kick: make(chan struct{}, 1)}
}

// Kick asks for a sync soon (after a deployment was recorded).
func (g *GitMirror) Kick() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Run syncs on changes and every Interval while this hub leads, until ctx
// ends.
func (g *GitMirror) Run(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		_, changed := g.cat.WatchFlows(wctx)
		if g.isLeader() {
			if err := g.Sync(ctx); err != nil && ctx.Err() == nil {
				g.cfg.Logger.Warn("flows mirror", "error", err)
			}
		} else {
			g.mu.Lock()
			g.leading = false
			g.mu.Unlock()
		}
		wait := g.cfg.Interval
		g.mu.Lock()
		if g.pushWant && !g.nextPush.IsZero() {
			wait = min(wait, max(time.Until(g.nextPush), 10*time.Millisecond))
		}
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-g.kick:
		case <-t.C:
		}
		t.Stop()
		cancel()
	}
}

// Sync commits every flows version and edge config not yet in the
// repository, then pushes (when a remote is set and a push is due). It
// returns the commit error; a push failure is logged and retried later.
func (g *GitMirror) Sync(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.open(ctx); err != nil {
		return err
	}
	n, err := g.commitNew(ctx)
	if n > 0 {
		g.pushWant = true
		g.nextPush = time.Time{}
	}
	g.push(ctx)
	return err
}

// open opens or creates the repository; on taking the lead it first
// takes the remote's history, so a new leader continues the mirror.
func (g *GitMirror) open(ctx context.Context) error {
	if g.repo == nil {
		repo, err := git.PlainOpen(g.cfg.Dir)
		if errors.Is(err, git.ErrRepositoryNotExists) {
			repo, err = git.PlainInitWithOptions(g.cfg.Dir, &git.PlainInitOptions{
				InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(gitBranch)}})
		}
		if err != nil {
			return fmt.Errorf("flows repository %s: %w", g.cfg.Dir, err)
		}
		if g.cfg.Remote != "" {
			if _, err := repo.Remote("origin"); errors.Is(err, git.ErrRemoteNotFound) {
				if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{g.cfg.Remote}}); err != nil {
					return err
				}
			}
		}
		g.repo = repo
		g.state = g.readState()
	}
	if !g.leading {
		g.leading = true
		g.takeRemote(ctx)
	}
	return nil
}

// takeRemote fetches the remote's main and tags and, when the local
// history is not ahead of it, checks it out.
func (g *GitMirror) takeRemote(ctx context.Context) {
	if g.cfg.Remote == "" {
		return
	}
	err := g.repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", Force: true, Tags: git.AllTags,
		RefSpecs: []gitconfig.RefSpec{"+refs/heads/" + gitBranch + ":refs/remotes/origin/" + gitBranch}})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		g.cfg.Logger.Warn("flows mirror: fetch the remote", "remote", g.cfg.Remote, "error", err)
		return
	}
	remote, err := g.repo.Reference(plumbing.NewRemoteReferenceName("origin", gitBranch), true)
	if err != nil {
		return // an empty remote
	}
	local, err := g.repo.Head()
	if err == nil {
		if local.Hash() == remote.Hash() {
			return
		}
		lc, err1 := g.repo.CommitObject(local.Hash())
		rc, err2 := g.repo.CommitObject(remote.Hash())
		if err1 == nil && err2 == nil {
			if ahead, _ := rc.IsAncestor(lc); ahead {
				return // the remote is behind: the next push brings it up
			}
		}
	}
	wt, err := g.repo.Worktree()
	if err != nil {
		return
	}
	ref := plumbing.NewHashReference(plumbing.NewBranchReferenceName(gitBranch), remote.Hash())
	if err := g.repo.Storer.SetReference(ref); err != nil {
		return
	}
	if err := wt.Reset(&git.ResetOptions{Commit: remote.Hash(), Mode: git.HardReset}); err != nil {
		g.cfg.Logger.Warn("flows mirror: check out the remote", "error", err)
		return
	}
	g.state = g.readState()
}

func (g *GitMirror) readState() gitState {
	st := gitState{Instances: map[string]int64{}, Edges: map[string]uint64{}}
	b, err := os.ReadFile(filepath.Join(g.cfg.Dir, gitStateFile))
	if err == nil {
		_ = json.Unmarshal(b, &st)
	}
	if st.Instances == nil {
		st.Instances = map[string]int64{}
	}
	if st.Edges == nil {
		st.Edges = map[string]uint64{}
	}
	return st
}

// pending is one version to commit.
type pending struct {
	at      time.Time
	inst    *store.FlowsVersion
	name    string
	edge    *catalog.Edge
	edgeCfg *edgeConfig
}

type edgeConfig struct {
	Version   uint64          `json:"version"`
	Flows     json.RawMessage `json:"flows"`
	Settings  json.RawMessage `json:"settings,omitempty"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// commitNew commits, oldest first, what the repository lacks.
func (g *GitMirror) commitNew(ctx context.Context) (int, error) {
	var todo []pending
	for _, inst := range g.cat.Instances() {
		if strings.Contains(inst.Name, ".") { // a deployment's color row
			continue
		}
		vs, err := g.st.ListFlowsVersions(ctx, store.FlowsVersionFilter{InstanceID: inst.ID, Limit: 1})
		if err != nil {
			return 0, err
		}
		if len(vs) == 0 || vs[0].Version <= g.state.Instances[inst.ID] {
			continue
		}
		for n := g.state.Instances[inst.ID] + 1; n <= vs[0].Version; n++ {
			v, err := g.st.GetFlowsVersion(ctx, inst.ID, n)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return 0, err
			}
			todo = append(todo, pending{at: v.Time, inst: &v, name: inst.Name})
		}
	}
	for _, e := range g.cat.Edges() {
		st, err := g.cat.Setting("edges/config/" + e.ID)
		if err != nil {
			continue
		}
		var c edgeConfig
		if json.Unmarshal(st.Value, &c) != nil || c.Version <= g.state.Edges[e.ID] {
			continue
		}
		e := e
		todo = append(todo, pending{at: c.UpdatedAt, edge: &e, edgeCfg: &c})
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].at.Before(todo[j].at) })
	for i, p := range todo {
		if err := g.commit(p); err != nil {
			return i, err
		}
	}
	return len(todo), nil
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func tagPart(s string) string { return tagUnsafe.ReplaceAllString(s, "_") }

// InstanceTag is the tag of an instance's flows version.
func InstanceTag(name string, version int64) string {
	return fmt.Sprintf("%s/v%d", tagPart(name), version)
}

func (g *GitMirror) commit(p pending) error {
	wt, err := g.repo.Worktree()
	if err != nil {
		return err
	}
	var path, msg, by string
	var doc []byte
	var tags []string
	if p.inst != nil {
		v := p.inst
		path = "instances/" + tagPart(p.name) + "/flows.json"
		doc = pretty(v.Flows)
		by = v.Username
		how := "PUT /api/instances/" + p.name + "/flows"
		if v.DeploymentID != "" {
			how = "deployment " + v.DeploymentID
			tags = append(tags, "deploy/"+tagPart(v.DeploymentID))
		}
		msg = fmt.Sprintf("%s: flows version %d by %s (%s)\n\nInstance: %s (%s)\nVersion: %d\nSHA-256: %s\nUser: %s\nDeployment: %s\n",
			p.name, v.Version, orUnknown(by), how, p.name, v.InstanceID, v.Version, v.SHA256, orUnknown(by), orUnknown(v.DeploymentID))
		tags = append([]string{InstanceTag(p.name, v.Version)}, tags...)
		g.state.Instances[v.InstanceID] = v.Version
	} else {
		c := p.edgeCfg
		path = "edges/" + tagPart(p.edge.Name) + "/flows.json"
		doc = pretty(c.Flows)
		by = c.UpdatedBy
		msg = fmt.Sprintf("edge %s: config version %d by %s\n\nEdge: %s (%s)\nVersion: %d\nUser: %s\n",
			p.edge.Name, c.Version, orUnknown(by), p.edge.Name, p.edge.ID, c.Version, orUnknown(by))
		tags = []string{fmt.Sprintf("edge/%s/v%d", tagPart(p.edge.Name), c.Version)}
		g.state.Edges[p.edge.ID] = c.Version
	}
	if err := g.write(path, doc); err != nil {
		return err
	}
	sb, _ := json.MarshalIndent(g.state, "", "  ")
	if err := g.write(gitStateFile, append(sb, '\n')); err != nil {
		return err
	}
	for _, f := range []string{path, gitStateFile} {
		if _, err := wt.Add(f); err != nil {
			return err
		}
	}
	sig := &object.Signature{Name: orUnknown(by), Email: tagPart(orUnknown(by)) + "@redforge.local", When: g.cfg.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: &object.Signature{Name: "RedForge hub", Email: "hub@redforge.local", When: sig.When}, AllowEmptyCommits: true})
	if err != nil {
		return fmt.Errorf("commit %s: %w", path, err)
	}
	for _, t := range tags {
		if _, err := g.repo.CreateTag(t, h, &git.CreateTagOptions{Tagger: sig, Message: strings.SplitN(msg, "\n", 2)[0]}); err != nil && !errors.Is(err, git.ErrTagExists) {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return nil
}

func (g *GitMirror) write(rel string, b []byte) error {
	p := filepath.Join(g.cfg.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o640)
}

func pretty(doc json.RawMessage) []byte {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return doc
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return doc
	}
	return append(b, '\n')
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// push pushes main and the tags when due; a failure is kept, logged and
// retried with backoff (1 s doubling to 5 min).
func (g *GitMirror) push(ctx context.Context) {
	if g.cfg.Remote == "" || !g.pushWant || g.cfg.Now().Before(g.nextPush) {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := g.repo.PushContext(pctx, &git.PushOptions{RemoteName: "origin", Force: false,
		RefSpecs: []gitconfig.RefSpec{"refs/heads/" + gitBranch + ":refs/heads/" + gitBranch, "refs/tags/*:refs/tags/*"}})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		if g.pushFail > 0 {
			g.cfg.Logger.Info("flows mirror pushed after failures", "remote", g.cfg.Remote, "failures", g.pushFail)
		}
		g.pushWant, g.pushErr, g.pushFail, g.nextPush = false, nil, 0, time.Time{}
		return
	}
	g.pushErr = err
	g.pushFail++
	backoff := min(time.Second<<min(g.pushFail-1, 9), 5*time.Minute)
	g.nextPush = g.cfg.Now().Add(backoff)
	g.cfg.Logger.Warn("flows mirror: push failed; retrying", "remote", g.cfg.Remote, "in", backoff, "error", err)
}

// GitStatus is the mirror's state for the API.
type GitStatus struct {
	Dir         string `json:"dir"`
	Remote      string `json:"remote,omitempty"`
	Pending     bool   `json:"push_pending"`
	PushError   string `json:"push_error,omitempty"`
	PushFailure int    `json:"push_failures"`
	Instances   int    `json:"instances"`
}

// Status returns the mirror's state.
func (g *GitMirror) Status() GitStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := GitStatus{Dir: g.cfg.Dir, Remote: g.cfg.Remote, Pending: g.pushWant, PushFailure: g.pushFail, Instances: len(g.state.Instances)}
	if g.pushErr != nil {
		s.PushError = g.pushErr.Error()
	}
	return s
}

// ErrNoTag is returned by FlowsAt for a tag the repository lacks.
var ErrNoTag = errors.New("backup: no such flows tag")

// FlowsAt returns the flows document of instance name at tag (a full tag
// such as orders/v3 or deploy/<id>, or just v3): from the remote when one
// is set (any hub can read it), else from the local repository.
func (g *GitMirror) FlowsAt(ctx context.Context, name, tag string) ([]byte, string, error) {
	if !strings.Contains(tag, "/") {
		tag = tagPart(name) + "/" + tag
	}
	repo, err := g.readRepo(ctx)
	if err != nil {
		return nil, tag, err
	}
	ref, err := repo.Tag(tag)
	if err != nil {
		return nil, tag, fmt.Errorf("%w: %s", ErrNoTag, tag)
	}
	hash := ref.Hash()
	if to, err := repo.TagObject(hash); err == nil {
		hash = to.Target
	}
	c, err := repo.CommitObject(hash)
	if err != nil {
		return nil, tag, err
	}
	f, err := c.File("instances/" + tagPart(name) + "/flows.json")
	if err != nil {
		return nil, tag, fmt.Errorf("%w: %s holds no flows of %s", ErrNoTag, tag, name)
	}
	s, err := f.Contents()
	return []byte(s), tag, err
}

func (g *GitMirror) readRepo(ctx context.Context) (*git.Repository, error) {
	if g.cfg.Remote != "" {
		repo, err := git.CloneContext(ctx, memory.NewStorage(), memfs.New(), &git.CloneOptions{URL: g.cfg.Remote, Tags: git.AllTags, NoCheckout: true})
		if err == nil {
			return repo, nil
		}
		g.cfg.Logger.Warn("flows mirror: read the remote; using the local repository", "error", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.repo == nil {
		repo, err := git.PlainOpen(g.cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("flows repository %s: %w", g.cfg.Dir, err)
		}
		g.repo = repo
	}
	return g.repo, nil
}
