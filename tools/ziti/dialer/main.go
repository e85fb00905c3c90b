// ralph-ziti-dial: a local listener, TCP on 127.0.0.1 or a Unix socket only
// its user may use, that joins each accepted connection to an OpenZiti
// circuit of its own to one service, with one client identity. The circuit
// is dialed for the connection or, in a burst of connections, just before it
// (see dialer).
//
// It replaces `ziti tunnel proxy` on the client side because that command
// listens on every interface (0.0.0.0) with no option to change it, which
// would expose a remote daemon's control API to the local network.
//
// With -terminator ID it dials only that addressable terminator of the
// service (a loop's opencode on the daemon's loops service).
//
// It reports on stdout, one JSON object per line: "listening" (with the
// address), "service" (whether the identity may dial it), "dial-error", and
// "fatal" before exiting non-zero.
package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openziti/sdk-golang/ziti"
	"github.com/openziti/sdk-golang/ziti/edge"

	"ralph-remote/ziti-build/internal/jsonlines"
	"ralph-remote/ziti-build/internal/zitilogin"
)

// dialLock serialises dials. With the API-session login, two first dials at
// once each opened a connection to the router, and the SDK closed one of
// them while a circuit used it ("mux is closed"): measured, 5 parallel
// requests on a fresh dialer failed every few runs. A dial takes ~5 ms.
var dialLock sync.Mutex

func fatal(message string, err error) {
	jsonlines.Report("fatal", map[string]any{"message": message + ": " + err.Error()})
	os.Exit(2)
}

func main() {
	if err := zitilogin.DieWithParent(); err != nil {
		if errors.Is(err, zitilogin.ErrParentGone) {
			os.Exit(3)
		}
		fatal("cannot start", err)
	}
	identity := flag.String("identity", "", "enrolled identity file (JSON)")
	service := flag.String("service", "", "service to dial")
	terminator := flag.String("terminator", "", "dial only this addressable terminator of the service (its instance id)")
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on, or unix:PATH for a socket only this user may use")
	loginTimeout := flag.Duration("login-timeout", 3*time.Second, "give up a login the controller does not answer within this long")
	flag.Parse()
	if *identity == "" || *service == "" {
		flag.Usage()
		os.Exit(64)
	}
	network, address := "tcp4", *listen
	if path, ok := strings.CutPrefix(*listen, "unix:"); ok {
		network, address = "unix", path
	} else if host, _, err := net.SplitHostPort(*listen); err != nil || !net.ParseIP(host).IsLoopback() {
		jsonlines.Report("fatal", map[string]any{"message": "--listen must be a loopback address, e.g. 127.0.0.1:0, or unix:PATH"})
		os.Exit(64)
	}

	// A command waits on this login: a controller that does not answer fails it in seconds, not the SDK's ten.
	ctx, err := zitilogin.Login(*identity, *loginTimeout)
	if err != nil {
		var failure *zitilogin.LoginFailure
		if errors.As(err, &failure) {
			fatal(failure.Message, failure.Err)
		}
		fatal("cannot log in", err)
	}
	defer ctx.Close()

	ln, err := listenOn(network, address)
	if err != nil {
		fatal("cannot listen on "+*listen, err)
	}
	jsonlines.Report("listening", map[string]any{"address": ln.Addr().String()})
	recheck := make(chan struct{}, 1)
	go watchService(ctx, *service, recheck)
	d := &dialer{ctx: ctx, service: *service, terminator: *terminator, recheck: recheck}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		_ = ln.Close()
	}()

	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			fatal("accept failed", err)
		}
		go d.serve(conn)
	}
}

// listenOn listens on TCP, or on a Unix socket that is created 0600 (the
// umask covers the window between bind and chmod) and replaces a stale one
// left by an earlier run.
func listenOn(network, address string) (net.Listener, error) {
	if network != "unix" {
		return net.Listen(network, address)
	}
	_ = os.Remove(address)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", address)
	syscall.Umask(old)
	return ln, err
}

// watchService reports whether the identity may dial the service, and each
// change of that, so the caller can tell "not yet" from "never". Until the
// service is available it asks every second; after that only when a dial
// fails, or every serviceRecheck: an idle client leaves the controller alone.
func watchService(ctx ziti.Context, service string, recheck <-chan struct{}) {
	known := -1
	for {
		available := 0
		if _, err := ctx.RefreshService(service); err == nil {
			if _, ok := ctx.GetService(service); ok {
				available = 1
			}
		}
		if available != known {
			known = available
			jsonlines.Report("service", map[string]any{"name": service, "available": available == 1})
		}
		wait := time.Second
		if available == 1 {
			wait = serviceRecheck
		}
		select {
		case <-recheck:
		case <-time.After(wait):
		}
	}
}

// serviceRecheck is how often a service known to be available is asked for again.
const serviceRecheck = 5 * time.Minute

// dialer makes the circuits for accepted connections, each its own.
//
// Setting a circuit up takes a round of messages between the SDK, the router,
// the controller and the hosting side: about 5 ms on loopback, most of a new
// connection's cost through the overlay (measured). So after each accepted
// connection it dials a spare circuit, which the next connection uses at once
// (waiting for it if it is still being dialed). A spare is kept only
// spareIdle: an idle client holds no circuit and makes the controller do
// nothing.
type dialer struct {
	ctx        ziti.Context
	service    string
	terminator string
	recheck    chan<- struct{}

	lock  sync.Mutex
	spare *spareDial
}

// spareIdle is how long a spare circuit waits for a connection to use it.
const spareIdle = 5 * time.Second

// spareDial is a spare circuit, still being dialed until done is closed.
type spareDial struct {
	done    chan struct{}
	circuit *circuit
	err     error
	expiry  *time.Timer
}

func (d *dialer) dial() (edge.Conn, error) {
	// An empty Identity lets the router pick any terminator of the service.
	dialLock.Lock()
	defer dialLock.Unlock()
	return d.ctx.DialWithOptions(d.service, &ziti.DialOptions{ConnectTimeout: 10 * time.Second, Identity: d.terminator})
}

// takeSpare removes the spare, if there is one, for a connection to use.
func (d *dialer) takeSpare() *spareDial {
	d.lock.Lock()
	defer d.lock.Unlock()
	s := d.spare
	d.spare = nil
	if s != nil && s.expiry != nil {
		s.expiry.Stop()
	}
	return s
}

// serve joins an accepted connection to a circuit of its own: the spare if it
// is alive, else a new one.
func (d *dialer) serve(conn net.Conn) {
	defer conn.Close()
	var c *circuit
	if spare := d.takeSpare(); spare != nil {
		<-spare.done
		// A spare that failed or died while it waited is not this connection's
		// business: it gets a circuit of its own, and any error with it.
		if spare.err == nil && spare.circuit.take(conn) {
			c = spare.circuit
		}
	}
	if c == nil {
		zconn, err := d.dial()
		if err != nil {
			jsonlines.Report("dial-error", map[string]any{"message": err.Error()})
			// The service may have gone (a revoked policy): ask again now.
			select {
			case d.recheck <- struct{}{}:
			default:
			}
			return
		}
		c = newCircuit(zconn, conn)
	}
	// Only now: the spare's dial must not hold up this connection's own.
	d.refill()
	c.forward(conn)
}

// refill dials a spare circuit in the background unless there is one.
func (d *dialer) refill() {
	d.lock.Lock()
	defer d.lock.Unlock()
	if d.spare != nil {
		return
	}
	s := &spareDial{done: make(chan struct{})}
	d.spare = s
	go d.dialSpare(s)
}

func (d *dialer) dialSpare(s *spareDial) {
	defer close(s.done)
	zconn, err := d.dial()
	d.lock.Lock()
	defer d.lock.Unlock()
	if err != nil {
		s.err = err
		if d.spare == s {
			d.spare = nil
		}
		return
	}
	s.circuit = newCircuit(zconn, nil)
	if d.spare != s {
		// A connection took it while it was being dialed.
		return
	}
	s.expiry = time.AfterFunc(spareIdle, func() {
		d.lock.Lock()
		unused := d.spare == s
		if unused {
			d.spare = nil
		}
		d.lock.Unlock()
		if unused {
			s.circuit.discard()
		}
	})
}

// circuit is one circuit and the client connection it serves. What comes back
// over it is read from the moment it is dialed, so a spare that its far end
// ends while it waits (the host restarted, the loop was unhosted, the router
// went) is seen dead at once and handed to nobody.
type circuit struct {
	zconn edge.Conn
	// answered is closed once the answers are all passed to the client.
	answered chan struct{}

	lock   sync.Mutex
	client net.Conn
	dead   bool
}

// newCircuit starts reading zconn's answers for client; a nil client makes a
// spare, which take gives one later.
func newCircuit(zconn edge.Conn, client net.Conn) *circuit {
	c := &circuit{zconn: zconn, client: client, answered: make(chan struct{})}
	go c.passAnswers()
	return c
}

// take gives a spare to a client connection; false if it is dead.
func (c *circuit) take(client net.Conn) bool {
	c.lock.Lock()
	defer c.lock.Unlock()
	if c.dead {
		return false
	}
	c.client = client
	return true
}

// discard closes a spare nobody took.
func (c *circuit) discard() {
	c.lock.Lock()
	if c.client != nil {
		c.lock.Unlock()
		return
	}
	c.dead = true
	c.lock.Unlock()
	_ = c.zconn.Close()
}

func (c *circuit) passAnswers() {
	defer close(c.answered)
	buf := make([]byte, 32*1024)
	n, err := c.zconn.Read(buf)
	c.lock.Lock()
	client := c.client
	if client == nil {
		// An end, an error or data before any request: nobody may use it.
		c.dead = true
		c.lock.Unlock()
		_ = c.zconn.Close()
		return
	}
	c.lock.Unlock()
	if n > 0 {
		_, err = client.Write(buf[:n])
	}
	if err == nil {
		_, _ = io.Copy(client, c.zconn)
	}
	if cw, ok := client.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// forward passes the client's requests on and waits for the answers, each
// side's end of stream passed on to the other.
func (c *circuit) forward(conn net.Conn) {
	defer c.zconn.Close()
	sent := make(chan struct{})
	go func() {
		_, _ = io.Copy(c.zconn, conn)
		// Pass the client's end of the request on, keep reading the answer.
		_ = c.zconn.CloseWrite()
		close(sent)
	}()
	<-c.answered
	<-sent
}
