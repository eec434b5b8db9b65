// Command pulumi-language-python is the sandbox's Python language host: the CLI starts it to run a
// `runtime: python` program. Upstream's host (module sdk/python/cmd/pulumi-language-python/v3) is not
// served by the Go module proxy this project reaches, so this is a small host of our own with the
// same contract, cited from github:pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go
// (read at 1b5949891b, v3.259.0+14; built here against sdk/v3 v3.274.1):
//
//   - Run resolves the project's virtualenv with the SDK's own `python/toolchain` package and runs
//     upstream's `pulumi-language-python-exec` (copied from the sdk/v3 module beside this binary)
//     with upstream's arguments and environment, so the program runs under the real Python SDK
//     and the real engine. When the host is interrupted (its own SIGINT, which ends the gRPC
//     server and so the request) or sent the Cancel RPC, the program gets SIGINT and is killed
//     5 s later if it has not exited (upstream: cmd.Cancel = Signal(os.Interrupt), WaitDelay 5 s).
//   - RunPlugin runs a policy pack (kind `analyzer`) as upstream does for a pack directory with a
//     `__main__.py`: `python -u -m pulumi.policy <args> <pack dir>`, in the pack's directory, with
//     the stack's organization, project, stack, dry-run flag and config (PULUMI_CONFIG) learned
//     through the SDK's PolicyProxy, and the request's environment. Other plugins run as
//     `python <dir> <args>` in the requested directory, with the plugin's `venv` by default.
//
// `pulumi about`, `pulumi new`, `pulumi convert` and the codegen calls are not served
// (Unimplemented): the sandbox only needs preview/up/refresh/destroy with the policy pack.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// Set with -ldflags -X main.version=...: the sdk/v3 release this host was built against.
var version = "3.274.1"

// The executor exits with this code after it has shown the user an actionable message.
const exitAfterUserActionableMessage = 32

const executorName = "pulumi-language-python-exec"

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	tracing       string
	executor      string
	// Cancelled by the Cancel RPC: a running program is then interrupted, as a finished request is.
	cancelCtx  context.Context
	cancelFunc context.CancelFunc
}

// How long an interrupted program has between SIGINT and SIGKILL (upstream's cmd.WaitDelay).
const interruptGrace = 5 * time.Second

func main() {
	var tracing string
	flag.StringVar(&tracing, "tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	// Accepted for compatibility with upstream's host; the options in Pulumi.yaml take precedence.
	flag.String("virtualenv", "", "[obsolete] virtualenv directory")
	flag.String("root", "", "[obsolete] project root")
	flag.Parse()

	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", tracing)

	executor, err := findExecutor()
	if err != nil {
		cmdutil.Exit(err)
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	// Upstream's main: the first SIGINT stops the gRPC server (ending every request, and so
	// interrupting a running program); the handler is deregistered then, so a second one kills.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	cancelChannel := make(chan bool)
	go func() {
		<-ctx.Done()
		cancel()
		close(cancelChannel)
	}()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check host RPC server: %w", err))
		}
	}

	cancelCtx, cancelFunc := context.WithCancel(context.Background())
	h := &host{
		engineAddress: engineAddress, tracing: tracing, executor: executor,
		cancelCtx: cancelCtx, cancelFunc: cancelFunc,
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelChannel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	// The CLI reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

// findExecutor looks beside this binary first (where the sandbox build puts it), then on PATH.
func findExecutor() (string, error) {
	if self, err := os.Executable(); err == nil {
		candidate := filepath.Join(filepath.Dir(self), executorName)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	if path, err := exec.LookPath(executorName); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("missing executor %s: it must sit beside pulumi-language-python or on PATH", executorName)
}

// pythonOptions reads the `runtime.options` of Pulumi.yaml as upstream's host does.
func pythonOptions(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
	}
	raw := map[string]any{}
	if info.GetOptions() != nil {
		raw = info.GetOptions().AsMap()
	}
	if v, ok := raw["virtualenv"]; ok {
		s, ok := v.(string)
		if !ok {
			return opts, errors.New("virtualenv option must be a string")
		}
		opts.Virtualenv = s
	}
	if v, ok := raw["typechecker"]; ok {
		switch v {
		case "mypy":
			opts.Typechecker = toolchain.TypeCheckerMypy
		case "pyright":
			opts.Typechecker = toolchain.TypeCheckerPyright
		default:
			return opts, fmt.Errorf("unsupported typechecker option: %v", v)
		}
	}
	if v, ok := raw["toolchain"]; ok {
		switch v {
		case "pip":
			opts.Toolchain = toolchain.Pip
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		case "uv":
			opts.Toolchain = toolchain.Uv
		default:
			return opts, fmt.Errorf("unsupported toolchain option: %v", v)
		}
	}
	return opts, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// The engine falls back to GetRequiredPlugins and then to "none" when these are Unimplemented;
// answering "none" explicitly keeps the CLI from ever trying to download a plugin.
func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{} // the executor expects an object, never null
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("marshalling config: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	configSecretKeys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("marshalling config secret keys: %w", err)
	}

	// Cancelled by the Cancel RPC or when the request ends (the host interrupted); the program
	// then gets SIGINT, and SIGKILL after interruptGrace.
	runCtx, runCancel := context.WithCancel(h.cancelCtx)
	defer runCancel()
	context.AfterFunc(ctx, runCancel)
	cmd, err := tc.Command(runCtx, append([]string{h.executor}, h.arguments(req)...)...)
	if err != nil {
		return nil, err
	}
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = interruptGrace
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env,
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(configSecretKeys),
		"PYTHONUNBUFFERED=1",
	)
	// The CLI shows what the program prints, through this plugin's own stdout and stderr.
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			switch code := exitErr.ExitCode(); code {
			case exitAfterUserActionableMessage:
				return &pulumirpc.RunResponse{Bail: true}, nil
			default:
				return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", code)}, nil
			}
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// arguments are the executor's flags, as upstream's host passes them.
func (h *host) arguments(req *pulumirpc.RunRequest) []string {
	var args []string
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	add("root_directory", req.GetInfo().GetRootDirectory())

	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	return append(args, req.GetArgs()...)
}

// About names the interpreter, so `pulumi about` shows which virtualenv runs the program.
func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    strings.TrimSpace(info.PythonVersion.String()),
	}, nil
}

// Cancel interrupts a running program (upstream: host.cancelFunc).
func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancelFunc()
	return &emptypb.Empty{}, nil
}

// RunPlugin runs a Python plugin directory. A policy pack (kind analyzer) with a `__main__.py` runs
// as upstream's host runs it: `python -u -m pulumi.policy <args> <pack dir>` from the pack's own
// directory, with the stack's configuration in its environment (the SDK's PolicyProxy learns it
// from the engine's ConfigureStack call and then proxies the analyzer's gRPC to the pack). Other
// plugins run as `python <dir> <args>` in the requested directory, in the plugin's `venv` unless
// the options name another. (Upstream runs a packaged plugin without `__main__.py` through
// `pulumi.run.plugin`; no plugin here is one.)
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	ctx := server.Context()
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return err
	}
	analyzer := req.GetKind() == string(apitype.AnalyzerPlugin)
	// Upstream's parseOptions defaults `venv` for plugins only, never for a policy pack.
	if !analyzer && (opts.Toolchain == toolchain.Pip || opts.Toolchain == toolchain.Auto) && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	programDir := req.GetInfo().GetProgramDirectory()
	if _, err := os.Stat(filepath.Join(opts.Root, "__main__.py")); err != nil {
		return fmt.Errorf("the sandbox host runs plugins with a __main__.py only (%s has none): %w", opts.Root, err)
	}
	var args []string
	if analyzer {
		args = append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
		args = append(args, programDir)
	} else {
		args = append([]string{programDir}, req.GetArgs()...)
	}
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	if analyzer {
		cmd.Dir = programDir
		proxy, proxied, err := sdk.NewPolicyProxy(ctx, stdout)
		if err != nil {
			return fmt.Errorf("could not start policy pack proxy: %w", err)
		}
		stdout = proxied
		config, err := proxy.AwaitConfiguration(ctx)
		if err != nil {
			return fmt.Errorf("could not get stack configuration: %w", err)
		}
		if config != nil {
			setEnv := func(k, v string) {
				if v != "" {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			setEnv("PULUMI_ORGANIZATION", config.GetOrganization())
			setEnv("PULUMI_PROJECT", config.GetProject())
			setEnv("PULUMI_STACK", config.GetStack())
			setEnv("PULUMI_DRY_RUN", strconv.FormatBool(config.GetDryRun()))
			if config.GetConfig() != nil {
				encoded, err := json.Marshal(config.GetConfig())
				if err != nil {
					return fmt.Errorf("could not marshal stack configuration: %w", err)
				}
				setEnv("PULUMI_CONFIG", string(encoded))
			}
		}
		cmd.Env = append(cmd.Env, req.GetEnv()...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("running the policy pack: %w", err)
		}
		return pluginExit(server, closer, proxy.Attach(ctx, cmd))
	}
	cmd.Dir = req.GetPwd()
	cmd.Env = append(cmd.Env, req.GetEnv()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return pluginExit(server, closer, cmd.Run())
}

// pluginExit reports how a plugin ended: its exit code to the engine, or the error.
func pluginExit(server pulumirpc.LanguageRuntime_RunPluginServer, closer interface{ Close() error }, err error) error {
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exitErr.ExitCode())}, //nolint:gosec // exit codes fit
			})
		}
		return fmt.Errorf("running the plugin: %w", err)
	}
	return closer.Close()
}
