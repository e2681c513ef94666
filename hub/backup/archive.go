package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// An archive is a tar stream compressed with zstd and, when recipients
// are configured, encrypted with age:
//
//	backup.json     the Header (format version first, so a reader refuses early)
//	catalog.snap    the catalog snapshot
//	secrets.key     only with IncludeKey, which needs age recipients
//	store/…         the store: store/sqlite.db, or store/pg/<table>.<n>.copy
//	manifest.json   the Manifest: positions and every other entry's SHA-256
//
// It is written and read as a stream: nothing is held whole in memory (a
// PostgreSQL table is cut into chunks of ChunkSize, the one buffer).

// ChunkSize is the largest entry a streamed table is cut into.
const ChunkSize = 8 << 20

const ageMagic = "age-encryption.org/v1"

// archiveWriter writes one archive.
type archiveWriter struct {
	closers []io.Closer // age, then zstd, closed in reverse
	zw      *zstd.Encoder
	tw      *tar.Writer
	files   []FileEntry
	mtime   time.Time
}

func newArchiveWriter(dst io.Writer, recipients []age.Recipient, mtime time.Time) (*archiveWriter, error) {
	a := &archiveWriter{mtime: mtime}
	if len(recipients) > 0 {
		enc, err := age.Encrypt(dst, recipients...)
		if err != nil {
			return nil, fmt.Errorf("backup: age: %w", err)
		}
		a.closers = append(a.closers, enc)
		dst = enc
	}
	zw, err := zstd.NewWriter(dst, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(2))
	if err != nil {
		return nil, err
	}
	a.zw = zw
	a.tw = tar.NewWriter(zw)
	return a, nil
}

// add writes an entry of size bytes read from r, recording its checksum.
func (a *archiveWriter) add(name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: a.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(a.tw, h), r)
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("backup: write %s: %d bytes, expected %d (did it change while copied?)", name, n, size)
	}
	if name != entryManifest {
		a.files = append(a.files, FileEntry{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return nil
}

func (a *archiveWriter) addBytes(name string, b []byte) error {
	return a.add(name, int64(len(b)), bytes.NewReader(b))
}

func (a *archiveWriter) addJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return a.addBytes(name, append(b, '\n'))
}

// finish writes the manifest with the files written so far and closes the
// tar, zstd and age layers. It does not close the destination.
func (a *archiveWriter) finish(m *Manifest) error {
	m.Files = slices.Clone(a.files)
	if err := a.addJSON(entryManifest, m); err != nil {
		return err
	}
	if err := a.tw.Close(); err != nil {
		return fmt.Errorf("backup: close tar: %w", err)
	}
	if err := a.zw.Close(); err != nil {
		return fmt.Errorf("backup: close zstd: %w", err)
	}
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i].Close(); err != nil {
			return fmt.Errorf("backup: close age: %w", err)
		}
	}
	return nil
}

// abort releases the compressor without finishing the archive.
func (a *archiveWriter) abort() { a.zw.Close() }

// chunkWriter cuts a stream into entries prefix.000001.copy, … of at most
// ChunkSize bytes.
type chunkWriter struct {
	a      *archiveWriter
	prefix string
	buf    []byte
	n      int
	err    error
}

func (a *archiveWriter) chunks(prefix string) *chunkWriter {
	return &chunkWriter{a: a, prefix: prefix, buf: make([]byte, 0, ChunkSize)}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && c.err == nil {
		k := min(len(p), ChunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(c.buf) == ChunkSize {
			c.flush()
		}
	}
	return written, c.err
}

func (c *chunkWriter) flush() {
	if c.err != nil || len(c.buf) == 0 {
		return
	}
	c.n++
	c.err = c.a.addBytes(fmt.Sprintf("%s.%06d.copy", c.prefix, c.n), c.buf)
	c.buf = c.buf[:0]
}

// close writes the last chunk and returns how many were written.
func (c *chunkWriter) close() (int, error) {
	c.flush()
	return c.n, c.err
}

// archiveReader reads an archive entry by entry, checking each entry's
// size and SHA-256 against the manifest at the end.
type archiveReader struct {
	tr     *tar.Reader
	zr     *zstd.Decoder
	Header Header
	cur    *hashingReader
	seen   []FileEntry
	// Manifest is set once next has returned io.EOF: every check passed.
	Manifest *Manifest
}

type hashingReader struct {
	name string
	r    io.Reader
	h    hash.Hash
	n    int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: reading %s: %v", ErrCorrupt, h.name, err)
	}
	return n, err
}

// openArchive starts reading an archive from src, decrypting it with ids
// when it is age-encrypted, and reads its header.
func openArchive(src io.Reader, ids []age.Identity) (*archiveReader, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	magic, _ := br.Peek(len(ageMagic))
	var r io.Reader = br
	if string(magic) == ageMagic {
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: the archive is age-encrypted; give the identity that opens it (--age-identity FILE)", ErrCorrupt)
		}
		d, err := age.Decrypt(br, ids...)
		if err != nil {
			return nil, fmt.Errorf("%w: age: %v (the wrong --age-identity?)", ErrCorrupt, err)
		}
		r = d
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
	}
	a := &archiveReader{tr: tar.NewReader(zr), zr: zr}
	name, body, err := a.next()
	if err != nil {
		zr.Close()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: empty archive", ErrCorrupt)
		}
		return nil, err
	}
	if name != entryHeader {
		zr.Close()
		return nil, fmt.Errorf("%w: first entry is %q, not %s (not a RedForge backup?)", ErrCorrupt, name, entryHeader)
	}
	b, err := io.ReadAll(io.LimitReader(body, 1<<20))
	if err != nil {
		zr.Close()
		return nil, err
	}
	if a.Header, err = decodeHeader(b); err != nil {
		zr.Close()
		return nil, err
	}
	return a, nil
}

// next returns the next entry's name and a reader of its body; io.EOF once
// the manifest was read and every entry matched it. An entry not read to
// its end is drained.
func (a *archiveReader) next() (string, io.Reader, error) {
	if err := a.endEntry(); err != nil {
		return "", nil, err
	}
	hdr, err := a.tr.Next()
	if err == io.EOF {
		return "", nil, fmt.Errorf("%w: truncated: the archive ends without %s", ErrCorrupt, entryManifest)
	}
	if err != nil {
		where := "the first entry"
		if len(a.seen) > 0 {
			where = "the entry after " + a.seen[len(a.seen)-1].Name
		}
		return "", nil, fmt.Errorf("%w: reading %s: %v", ErrCorrupt, where, err)
	}
	if hdr.Typeflag != tar.TypeReg || !validEntryName(hdr.Name) {
		return "", nil, fmt.Errorf("%w: unexpected entry %q", ErrCorrupt, hdr.Name)
	}
	if hdr.Name == entryManifest {
		return "", nil, a.readManifest()
	}
	a.cur = &hashingReader{name: hdr.Name, r: a.tr, h: sha256.New()}
	return hdr.Name, a.cur, nil
}

func validEntryName(name string) bool {
	switch name {
	case entryHeader, entryCatalog, entryKey, entrySQLite, entryManifest:
		return true
	}
	rest, ok := strings.CutPrefix(name, entryPGPrefix)
	return ok && !strings.Contains(rest, "/") && !strings.Contains(rest, "..") && strings.HasSuffix(rest, ".copy")
}

func (a *archiveReader) endEntry() error {
	if a.cur == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, a.cur); err != nil {
		return err
	}
	a.seen = append(a.seen, FileEntry{Name: a.cur.name, Size: a.cur.n, SHA256: hex.EncodeToString(a.cur.h.Sum(nil))})
	a.cur = nil
	return nil
}

// readManifest reads the manifest and checks every entry seen against it.
func (a *archiveReader) readManifest() error {
	b, err := io.ReadAll(io.LimitReader(a.tr, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: reading %s: %v", ErrCorrupt, entryManifest, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, entryManifest, err)
	}
	if _, err := a.tr.Next(); err != io.EOF {
		return fmt.Errorf("%w: data after %s (%v)", ErrCorrupt, entryManifest, err)
	}
	if _, err := io.Copy(io.Discard, a.zr); err != nil {
		return fmt.Errorf("%w: after %s: %v", ErrCorrupt, entryManifest, err)
	}
	if m.ID != a.Header.ID || m.Format != a.Header.Format {
		return fmt.Errorf("%w: %s is of archive %s, the header of %s", ErrCorrupt, entryManifest, m.ID, a.Header.ID)
	}
	want := map[string]FileEntry{}
	for _, f := range m.Files {
		want[f.Name] = f
	}
	for _, got := range a.seen {
		w, ok := want[got.Name]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s is not in the manifest", ErrCorrupt, got.Name)
		case w.Size != got.Size:
			return fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrCorrupt, got.Name, got.Size, w.Size)
		case w.SHA256 != got.SHA256:
			return fmt.Errorf("%w: %s: SHA-256 %s, the manifest says %s", ErrCorrupt, got.Name, got.SHA256, w.SHA256)
		}
		delete(want, got.Name)
	}
	for name := range want {
		return fmt.Errorf("%w: %s is in the manifest but not in the archive", ErrCorrupt, name)
	}
	a.Manifest = &m
	return io.EOF
}

func (a *archiveReader) close() { a.zr.Close() }
