package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

const (
	followEvery = 200 * time.Millisecond // how often a following reader looks for new output
	tailChunk   = 64 << 10
)

// rotateLog copies the log to <log>.1 and truncates it once it passes
// LogMaxBytes. The process keeps its O_APPEND descriptor, so it goes on
// writing at the start of the emptied file; lines written between the copy
// and the truncation are lost. The driver calls it whenever it looks at an
// instance (Start, Inspect, List, Stats, Logs), which the hub's monitor does
// every few seconds.
func (d *Driver) rotateLog(path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < d.cfg.LogMaxBytes {
		return
	}
	d.rotateMu.Lock()
	defer d.rotateMu.Unlock()
	if err := rotate(path, d.cfg.LogMaxBytes); err != nil {
		d.log.Warn("rotate instance log", "path", path, "error", err)
	}
}

func rotate(path string, maxBytes int64) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil || fi.Size() < maxBytes {
		return err // rotated meanwhile
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".rot*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path+".1"); err != nil {
		return err
	}
	return os.Truncate(path, 0)
}

// Logs returns the last tail lines (all when tail <= 0) of node-red.log,
// reaching into the rotated node-red.log.1 when the current file has
// fewer. With follow, the reader then delivers new output as it is written
// until it is closed, ctx ends or the process is no longer running.
func (d *Driver) Logs(ctx context.Context, instanceID string, tail int, follow bool) (io.ReadCloser, error) {
	r, err := d.load(instanceID)
	if err != nil {
		return nil, err
	}
	path := d.logPath(r.InstanceID)
	d.rotateLog(path)
	head, offset, err := tailLog(path, tail)
	if err != nil {
		return nil, fmt.Errorf("logs of instance %s: %w", instanceID, err)
	}
	if !follow {
		return io.NopCloser(bytes.NewReader(head)), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		if _, err := pw.Write(head); err != nil {
			return
		}
		pw.CloseWithError(d.follow(ctx, r, path, offset, pw))
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

// follow copies what is appended to path after offset into w until ctx
// ends, w is closed or r's process has stopped and its output is drained.
func (d *Driver) follow(ctx context.Context, r record, path string, offset int64, w io.Writer) error {
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		running := r.alive()
		n, err := copyFrom(path, offset, w)
		if err != nil {
			return err
		}
		offset = n
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// copyFrom writes path's bytes after offset to w and returns the new
// offset; after a truncation (rotation) it starts from the beginning.
func copyFrom(path string, offset int64, w io.Writer) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return offset, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return offset, err
	}
	if fi.Size() < offset {
		offset = 0
	}
	n, err := io.Copy(w, io.NewSectionReader(f, offset, fi.Size()-offset))
	return offset + n, err
}

// logReader ends a following log stream when closed.
type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// tailLog returns the last n lines (all when n <= 0) of path, preceded by
// lines of path.1 when path has fewer, and the size of path when read.
func tailLog(path string, n int) ([]byte, int64, error) {
	cur, size, err := tailFile(path, n)
	if err != nil {
		return nil, 0, err
	}
	have := countLines(cur)
	if n > 0 && have >= n {
		return cur, size, nil
	}
	want := 0
	if n > 0 {
		want = n - have
	}
	old, _, err := tailFile(path+".1", want)
	if err != nil {
		return nil, 0, err
	}
	return append(old, cur...), size, nil
}

// countLines counts lines, a final one without a newline included.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// tailFile returns the last n lines of path (all when n <= 0) and its
// size; a missing file is empty.
func tailFile(path string, n int) ([]byte, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	start := int64(0)
	if n > 0 {
		start = lineStart(f, size, n)
	}
	b := make([]byte, size-start)
	if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	return b, size, nil
}

// lineStart finds the offset where the last n lines of f (size bytes)
// begin, reading backwards in chunks. A final line without a newline counts
// as a line.
func lineStart(f io.ReaderAt, size int64, n int) int64 {
	buf := make([]byte, tailChunk)
	seen := 0
	end := size
	for end > 0 {
		k := min(int64(len(buf)), end)
		off := end - k
		if _, err := f.ReadAt(buf[:k], off); err != nil && !errors.Is(err, io.EOF) {
			return 0
		}
		for i := k - 1; i >= 0; i-- {
			if buf[i] != '\n' || off+i == size-1 {
				continue // the newline ending the last line starts nothing
			}
			seen++
			if seen == n {
				return off + i + 1
			}
		}
		end = off
	}
	return 0
}
