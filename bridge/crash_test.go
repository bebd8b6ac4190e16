package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

const crashChildEnv = "SWITCHBOARD_TEST_CRASH_CHILD"

type crashSpec struct {
	DB database.Options `json:"db"`
	N  int              `json:"n"`
}

// runCrashChild is the child process of TestCrashBetweenAcceptAndDelivery:
// it accepts messages whose delivery never completes, says so, and waits to
// be killed with SIGKILL.
func runCrashChild() int {
	var spec crashSpec
	if err := json.Unmarshal([]byte(os.Getenv(crashChildEnv)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	db, err := database.Open(ctx, spec.DB, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, b := bridgetest.NewLoopback(netA), bridgetest.NewLoopback(netB)
	b.OnSend(func(*bridge.Delivery) error { select {} }) // the destination hangs
	r, err := bridge.New(bridge.Options{DB: db, Secret: testSecret, Log: log, Registerer: prometheus.NewRegistry(), Lease: 2 * time.Second, PollInterval: 100 * time.Millisecond})
	if err == nil {
		_ = r.Register(a)
		_ = r.Register(b)
		err = r.Start(ctx)
	}
	if err == nil {
		_, err = r.CreateConversation(ctx, legA("room"), legB("chat"))
	}
	for i := 0; err == nil && i < spec.N; i++ {
		err = a.Receive(ctx, text("room", "$"+strconv.Itoa(i), strconv.Itoa(i)))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("accepted")
	select {}
}

func TestCrashBetweenAcceptAndDeliveryDeliversExactlyOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		const n = 25
		spec, err := json.Marshal(crashSpec{DB: dbo, N: n})
		require.NoError(t, err)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, "child exited before accepting")
		require.Equal(t, "accepted\n", line)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		h := startHarness(t, dbo)
		sent := h.b.WaitSent(n, 15*time.Second)
		require.Len(t, bodies(sent), n)
		time.Sleep(500 * time.Millisecond) // anything extra would show up now
		want := make([]string, n)
		for i := range want {
			want[i] = strconv.Itoa(i)
		}
		require.Equal(t, want, bodies(h.b.Sent()), "each message exactly once, in order")
		waitQueueEmpty(t, h.router)
	})
}
