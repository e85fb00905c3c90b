// ralph-ziti-dial: a local TCP listener on 127.0.0.1 that dials one OpenZiti
// service per accepted connection, with one client identity.
//
// It replaces `ziti tunnel proxy` on the client side because that command
// listens on every interface (0.0.0.0) with no option to change it, which
// would expose a remote daemon's control API to the local network.
//
// It reports on stdout, one JSON object per line: "listening" (with the
// address), "service" (whether the identity may dial it), "dial-error", and
// "fatal" before exiting non-zero.
package main

import (
	"crypto/x509"
	"encoding/json"
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
)

var out = json.NewEncoder(os.Stdout)
var outLock sync.Mutex

func report(event string, fields map[string]any) {
	fields["event"] = event
	outLock.Lock()
	defer outLock.Unlock()
	_ = out.Encode(fields)
}

func fatal(message string, err error) {
	report("fatal", map[string]any{"message": message + ": " + err.Error()})
	os.Exit(2)
}

// dieWithParent ends this process when the process that started it dies,
// however it dies: the kernel sends SIGKILL, so no handler is involved.
func dieWithParent() {
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fatal("cannot ask to die with the parent process", errno)
	}
	// The parent may have died before the request above.
	if os.Getppid() != parent || parent == 1 {
		os.Exit(3)
	}
}

// loginError names the real cause of a failed login and what to do about it.
func loginError(controller string, err error) string {
	var hostErr x509.HostnameError
	var authorityErr x509.UnknownAuthorityError
	var certErr *x509.CertificateInvalidError
	text := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(text, "connection refused"):
		return "cannot reach the controller at " + controller + ": connection refused (is the network up, and is this its address?)"
	case errors.As(err, &hostErr):
		names := append(append([]string{}, hostErr.Certificate.DNSNames...), ipStrings(hostErr.Certificate.IPAddresses)...)
		return "the controller's certificate is not valid for the name in this identity (" + hostErr.Host + "); it names " + strings.Join(names, ", ") + ": the network advertises another address, so enrol an identity for it"
	case errors.As(err, &authorityErr) || errors.As(err, &certErr):
		return "the controller at " + controller + " has a certificate this identity does not trust: it belongs to another network"
	case errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(text, "timeout") || strings.Contains(text, "deadline exceeded"):
		return "no answer from the controller at " + controller + " (is the address reachable from here?)"
	case strings.Contains(text, "UNAUTHORIZED") || strings.Contains(text, "401") || strings.Contains(text, "INVALID_AUTH") || strings.Contains(text, "certificate required"):
		return "the controller refused this identity: it was revoked, or it belongs to another network"
	default:
		return "cannot log in to the controller at " + controller
	}
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func main() {
	dieWithParent()
	identity := flag.String("identity", "", "enrolled identity file (JSON)")
	service := flag.String("service", "", "service to dial")
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	if *identity == "" || *service == "" {
		flag.Usage()
		os.Exit(64)
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || !net.ParseIP(host).IsLoopback() {
		report("fatal", map[string]any{"message": "--listen must be a loopback address, e.g. 127.0.0.1:0"})
		os.Exit(64)
	}

	cfg, err := ziti.NewConfigFromFile(*identity)
	if err != nil {
		fatal("cannot load identity "+*identity, err)
	}
	// Without a control connection to the router, the host's close of a
	// circuit was not passed on here and a stream that ends by closing
	// stalled. A single default connection keeps flow control in the router:
	// with more, the SDK takes it over, and in this release that could stall
	// the hosting side once clients aborted streams (both measured).
	cfg.MaxControlConnections = 1
	cfg.MaxDefaultConnections = 1
	ctx, err := ziti.NewContext(cfg)
	if err != nil {
		fatal("cannot create a Ziti context", err)
	}
	defer ctx.Close()
	// The SDK's default OIDC login runs a local HTTP server on every
	// interface for the length of the login; the API-session login opens none.
	impl, ok := ctx.(*ziti.ContextImpl)
	if !ok {
		fatal("unexpected Ziti context", errors.New("not a *ziti.ContextImpl"))
	}
	impl.CtrlClt.SetUseOidc(false)
	if err := ctx.Authenticate(); err != nil {
		fatal(loginError(cfg.ZtAPI, err), err)
	}

	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		fatal("cannot listen on "+*listen, err)
	}
	report("listening", map[string]any{"address": ln.Addr().String()})
	go watchService(ctx, *service)

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
		go forward(ctx, *service, conn)
	}
}

// watchService reports whether the identity may dial the service, and each
// change of that, so the caller can tell "not yet" from "never".
func watchService(ctx ziti.Context, service string) {
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
			report("service", map[string]any{"name": service, "available": available == 1})
		}
		time.Sleep(time.Second)
	}
}

func forward(ctx ziti.Context, service string, conn net.Conn) {
	defer conn.Close()
	zconn, err := ctx.DialWithOptions(service, &ziti.DialOptions{ConnectTimeout: 10 * time.Second})
	if err != nil {
		report("dial-error", map[string]any{"message": err.Error()})
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
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}
