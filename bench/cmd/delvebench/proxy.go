package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// countingProxy forwards TCP connections to the upstream and counts them: the number of TLS
// connections a system opens is the number it accepts, whatever the system itself reports. The
// bytes pass through untouched (TLS is end to end); on Linux io.Copy between two TCP connections
// is splice(2).
type countingProxy struct {
	l        net.Listener
	target   string
	accepted atomic.Int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newCountingProxy(target string) (*countingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.loop()
	return p, nil
}

func (p *countingProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *countingProxy) loop() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *countingProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.conns == nil {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *countingProxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, true) || !p.track(up, true) {
		c.Close()
		up.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done // either side closing ends both
	c.Close()
	up.Close()
	<-done
	p.track(c, false)
	p.track(up, false)
}

// close stops accepting, closes every forwarded connection and waits for the goroutines.
func (p *countingProxy) close() {
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
