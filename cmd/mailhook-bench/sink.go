package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the no-op SMTP server the bench measures mailhook against: the
// same go-smtp server mailhook's listener is built on, with a Data that
// reads the message and accepts it. What it does per second is what the
// protocol, the client and this machine allow.
type sink struct {
	srv  *smtp.Server
	addr string
	done chan struct{}
}

type sinkSession struct{}

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// startSink listens on 127.0.0.1:0.
func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{}, nil }))
	srv.Domain = "sink.bench.test"
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 100
	srv.MaxLineLength = 4096
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s := &sink{srv: srv, addr: l.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer func() { _ = recover() }()
		_ = srv.Serve(l)
	}()
	return s, nil
}

// Addr is the sink's host:port.
func (s *sink) Addr() string { return s.addr }

// Close stops the sink and its sessions.
func (s *sink) Close() {
	_ = s.srv.Close()
	<-s.done
}
