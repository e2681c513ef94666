// Package mqttbench is the load generator of the edge benchmarks: an MQTT
// 3.1.1 client that does nothing but publish at QoS 1 with a window of
// unacknowledged messages, writing pre-encoded PUBLISH packets through one
// buffer and counting PUBACKs. The benchmarks run it in the process they
// measure, on the same cores: paho, a full client with a token, a channel
// and goroutine hand-offs per message, took half of the ingest
// benchmark's CPU there, so the figures measured paho as much as the edge.
// Tests keep using paho. Benchmarks only.
package mqttbench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Publisher is one MQTT connection that publishes at QoS 1.
type Publisher struct {
	conn   net.Conn
	w      *bufio.Writer
	window chan struct{} // a token per unacknowledged PUBLISH
	acks   chan error    // why the reader stopped
	acked  atomic.Int64
	id     uint16
	buf    []byte
}

// Dial connects to addr as clientID (clean session) and returns a
// Publisher with up to window PUBLISHes unacknowledged (1..65535).
func Dial(addr, clientID string, window int) (*Publisher, error) {
	return DialAuth(addr, clientID, "", "", window)
}

// DialAuth is Dial with a username and password (none when user is "").
func DialAuth(addr, clientID, user, password string, window int) (*Publisher, error) {
	if window < 1 || window > 65535 {
		return nil, fmt.Errorf("mqttbench: window %d is not in 1..65535", window)
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	p := &Publisher{conn: conn, w: bufio.NewWriterSize(conn, 64<<10), window: make(chan struct{}, window)}
	if err := p.connect(clientID, user, password); err != nil {
		conn.Close()
		return nil, err
	}
	return p, nil
}

func (p *Publisher) connect(clientID, user, password string) error {
	flags := byte(0x02) // clean session
	if user != "" {
		flags |= 0xc0 // username and password
	}
	fields := []string{clientID}
	if user != "" {
		fields = append(fields, user, password)
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 60}
	for _, f := range fields {
		body = binary.BigEndian.AppendUint16(body, uint16(len(f)))
		body = append(body, f...)
	}
	p.w.Write(appendHeader(nil, 0x10, len(body)))
	p.w.Write(body)
	if err := p.w.Flush(); err != nil {
		return err
	}
	var ack [4]byte
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(p.conn, ack[:]); err != nil {
		return fmt.Errorf("mqttbench: CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("mqttbench: CONNACK % x: refused", ack)
	}
	p.conn.SetReadDeadline(time.Time{})
	return nil
}

// appendHeader appends a fixed header: the packet's first byte and its
// remaining length.
func appendHeader(dst []byte, first byte, remaining int) []byte {
	dst = append(dst, first)
	for {
		b := byte(remaining % 128)
		if remaining /= 128; remaining > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if remaining == 0 {
			return dst
		}
	}
}

// Run publishes payload(i) for i = from, from+step, … below to on topic
// and returns how many were PUBACKed. It stops at the first error (a
// closed connection ends a run early: what was acknowledged counts).
func (p *Publisher) Run(topic string, from, to, step int, payload func(int) []byte) (int, error) {
	p.acks = make(chan error, 1)
	go p.readAcks()
	var err error
	for i := from; i < to && err == nil; i += step {
		err = p.publish(topic, payload(i))
	}
	if err == nil {
		err = p.w.Flush()
	}
	for range cap(p.window) { // every token back: every PUBLISH answered
		if err != nil {
			break
		}
		select {
		case p.window <- struct{}{}:
		case err = <-p.acks:
			if err == nil {
				err = errors.New("mqttbench: the connection closed before every PUBACK")
			}
		case <-time.After(time.Minute):
			err = errors.New("mqttbench: no PUBACK for a minute")
		}
	}
	p.conn.Close()
	return int(p.acked.Load()), err
}

// publish queues one PUBLISH, flushing first when the window is full.
func (p *Publisher) publish(topic string, payload []byte) error {
	select {
	case p.window <- struct{}{}:
	default:
		if err := p.w.Flush(); err != nil {
			return err
		}
		select {
		case p.window <- struct{}{}:
		case err := <-p.acks:
			return fmt.Errorf("mqttbench: PUBACKs stopped: %v", err)
		case <-time.After(time.Minute):
			return errors.New("mqttbench: no PUBACK for a minute")
		}
	}
	if p.id++; p.id == 0 {
		p.id = 1
	}
	p.buf = appendHeader(p.buf[:0], 0x32, 2+len(topic)+2+len(payload))
	p.buf = binary.BigEndian.AppendUint16(p.buf, uint16(len(topic)))
	p.buf = append(p.buf, topic...)
	p.buf = binary.BigEndian.AppendUint16(p.buf, p.id)
	p.w.Write(p.buf)
	_, err := p.w.Write(payload)
	return err
}

// readAcks counts PUBACKs, each freeing a window token.
func (p *Publisher) readAcks() {
	r := bufio.NewReaderSize(p.conn, 16<<10)
	var ack [4]byte
	for {
		if _, err := io.ReadFull(r, ack[:]); err != nil {
			p.acks <- err
			return
		}
		if ack[0] != 0x40 || ack[1] != 2 {
			p.acks <- fmt.Errorf("mqttbench: want a PUBACK, got % x", ack)
			return
		}
		p.acked.Add(1)
		<-p.window
	}
}
