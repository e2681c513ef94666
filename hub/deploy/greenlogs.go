package deploy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// GreenLogLines is how many of the last lines of each replica's log a
// failed green leaves with its deployment.
const GreenLogLines = 200

// maxGreenLogBytes bounds what one replica's kept log may weigh (it goes
// through the Raft log): older lines go first.
const maxGreenLogBytes = 64 << 10

// maxGreenLogLine bounds one kept line.
const maxGreenLogLine = 2 << 10

// ReplicaLog is the end of one green replica's log.
type ReplicaLog = catalog.ReplicaLog

// GreenLogs are the logs a failed green left with its deployment, read
// just before the rollback removed its runtime: the catalog's row
// (catalog.GreenLogs) as GET /api/deployments/:id/logs serves it.
type GreenLogs struct {
	DeploymentID string       `json:"deployment_id"`
	Green        string       `json:"green"`
	At           time.Time    `json:"at"`
	Replicas     []ReplicaLog `json:"replicas"`
}

// keepGreenLogs reads the last GreenLogLines of every replica of green
// and records them with the deployment d (catalog.PutGreenLogs; they go
// with the deployment or its instance). A replica whose log cannot be
// read is recorded with the reason; failing to record is logged, never
// stops the rollback.
func (o *Orchestrator) keepGreenLogs(ctx context.Context, d catalog.Deployment, green catalog.Instance) {
	if o.d.Logs == nil {
		return
	}
	id := d.ID
	gl := catalog.GreenLogs{DeploymentID: id, InstanceID: d.InstanceID, Green: green.Name, At: o.now().UTC()}
	for _, a := range o.d.Catalog.InstanceAllocations(green.ID) {
		rl := ReplicaLog{Replica: a.Replica, Hub: a.Hub}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := o.d.Logs(rctx, a, GreenLogLines)
		cancel()
		if err != nil {
			rl.Error = err.Error()
		} else {
			rl.Lines = lastLines(b, GreenLogLines)
		}
		gl.Replicas = append(gl.Replicas, rl)
	}
	if _, err := o.d.Applier.Apply(ctx, catalog.PutGreenLogs(gl)); err != nil {
		o.log.Error("keep the logs of the failed green", "deployment", id, "green", green.Name, "error", err)
		return
	}
	o.note(ctx, id, fmt.Sprintf("the last %d log lines of each replica of %s are kept: GET /api/deployments/%s/logs", GreenLogLines, green.Name, id))
}

// lastLines returns up to n of the last lines of b, each cut to
// maxGreenLogLine bytes, together at most maxGreenLogBytes.
func lastLines(b []byte, n int) []string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return []string{}
	}
	all := strings.Split(string(b), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	size, from := 0, len(all)
	for from > 0 {
		l := strings.TrimSuffix(all[from-1], "\r")
		if len(l) > maxGreenLogLine {
			l = l[:maxGreenLogLine]
		}
		if size+len(l) > maxGreenLogBytes {
			break
		}
		size += len(l)
		from--
		all[from] = l
	}
	return all[from:]
}

// GreenLogs returns the logs a failed green left with deployment id.
// Errors: catalog.ErrNotFound for an unknown deployment or one that kept
// none (its green did not fail, or it never had one).
func (o *Orchestrator) GreenLogs(id string) (GreenLogs, error) {
	if _, err := o.d.Catalog.Deployment(id); err != nil {
		return GreenLogs{}, err
	}
	row, err := o.d.Catalog.GreenLogs(id)
	if err != nil {
		return GreenLogs{}, fmt.Errorf("deployment %s kept no green logs (only a green that failed leaves them): %w", id, catalog.ErrNotFound)
	}
	return GreenLogs{DeploymentID: row.DeploymentID, Green: row.Green, At: row.At, Replicas: row.Replicas}, nil
}
