// ralph-ziti-dial: a local listener, TCP on 127.0.0.1 or a Unix socket only
// its user may use, that dials one OpenZiti service per accepted connection,
// with one client identity.
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

	"ralph-remote/ziti-build/internal/jsonlines"
	"ralph-remote/ziti-build/internal/zitilogin"
)

// dialLock serialises dials. With the API-session login, two first dials at
// once each opened a connection to the router, and the SDK closed one of
// them while a circuit used it ("mux is closed"): measured, 5 parallel
// requests on a fresh dialer failed every few runs. A dial takes ~10 ms.
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

	ctx, err := zitilogin.Login(*identity)
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
		go forward(ctx, *service, *terminator, conn, recheck)
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

func forward(ctx ziti.Context, service, terminator string, conn net.Conn, recheck chan<- struct{}) {
	defer conn.Close()
	// An empty Identity lets the router pick any terminator of the service.
	dialLock.Lock()
	zconn, err := ctx.DialWithOptions(service, &ziti.DialOptions{ConnectTimeout: 10 * time.Second, Identity: terminator})
	dialLock.Unlock()
	if err != nil {
		jsonlines.Report("dial-error", map[string]any{"message": err.Error()})
		// The service may have gone (a revoked policy): ask again now.
		select {
		case recheck <- struct{}{}:
		default:
		}
		return
	}
	defer zconn.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(zconn, conn)
		// Pass the client's end of the request on, keep reading the answer.
		_ = zconn.CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(conn, zconn)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}
