// Command pulumi-resource-command is the sandbox's stand-in for the `command` provider (pulumi-command
// v1.2.1 on pulumi-go-provider v1.3.0): its module (github.com/pulumi/pulumi-command/provider) is not
// served by the Go module proxy this project reaches. It serves `command:local:Command` as upstream
// does, bugs included; each rule names the upstream file it mirrors (github:pulumi/pulumi-command
// at v1.2.1, github:pulumi/pulumi-go-provider at v1.3.0):
//
//   - create runs on create; update (or create when update is unset) runs on any other input change,
//     with the previous stdout/stderr in PULUMI_COMMAND_STDOUT/STDERR unless addPreviousOutputInEnv
//     is false; only a change of `triggers` replaces the resource (create-before-delete, as the
//     engine decides) — provider/pkg/provider/local/commandController.go, common/inputs.go
//     (`provider:"replaceOnChanges"`);
//   - nothing runs during preview: stdout, stderr, assets and archive are unknown then;
//   - delete runs the `delete` command with the command, environment, dir and interpreter stored
//     in state at the last successful up;
//   - the command runs with this provider's environment (the `pulumi` process's) plus `environment`,
//     in `dir`, through `/bin/sh -c` or `interpreter`, with `stdin` — local/commandOutputs.go `run`;
//   - stdout and stderr (one trailing newline trimmed) are outputs; an output is secret only when
//     an input of the same name is (none is named stdout, stderr, assets or archive), so a secret
//     in `environment` does NOT make stdout secret: `additionalSecretOutputs` does
//     (go-provider infer/resource.go markSecret, ensureDefaultSecrets);
//   - assetPaths / archivePaths (globs relative to dir, `**` crosses directories, a leading `!`
//     excludes) become the `assets` map and the `archive` output;
//   - Read (refresh) returns the stored state unchanged (infer/resource.go, the default Read: "We
//     now just return them as is"). The engine sends that state with every asset's and archive's
//     contents elided (hash only), so after a refresh the `archive` of a Command holds no files:
//     pulumi-command#537, pulumi#18926, pulumi#20661. Reproduced, not papered over;
//   - the engine's Cancel (sent on the first Ctrl-C) and `customTimeouts` cancel the operation's
//     context, and exec.CommandContext then SIGKILLs the command's process — only that process
//     (`/bin/sh`), not its children, and Wait still waits for the output pipes to close
//     (middleware/cancel/cancel.go; no WaitDelay in local/commandOutputs.go);
//   - a failing command fails the step with its combined output, and nothing is written to state;
//   - stdout and stderr lines are logged to the engine as ephemeral status messages (LogStatus) as
//     `logging` says, secret inputs or not, through one pipe read by a bufio.Scanner with its
//     default 64 KiB limit (util/util.go LogOutput): a single line of 64 KiB or more ends the
//     scanner, nothing reads the pipe any more, and the command hangs for good.
//
// `remote:*` resources and the `local:run` function are not served.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Set with -ldflags -X main.version=...: the pulumi-command release whose SDK the program uses.
var version = "1.2.1"

const localCommand = "command:local:Command"

// The inputs of local.Command; all of them are stored in state and compared by Diff.
var inputKeys = []resource.PropertyKey{
	"create", "update", "delete", "dir", "environment", "triggers", "interpreter", "stdin",
	"assetPaths", "archivePaths", "addPreviousOutputInEnv", "logging",
}

var outputKeys = []resource.PropertyKey{"stdout", "stderr", "assets", "archive"}

type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer
	host *provider.HostClient

	// What the engine's Cancel ends: every operation in flight, and any started after it
	// (go-provider middleware/cancel: cancelFuncs.Close() evicts all, later Inserts at once).
	mu        sync.Mutex
	cancels   map[int]context.CancelFunc
	nextID    int
	cancelled bool
}

func main() {
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &commandProvider{host: host, cancels: map[int]context.CancelFunc{}}, nil
	})
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
}

var marshalOpts = plugin.MarshalOptions{
	KeepUnknowns:       true,
	KeepSecrets:        true,
	KeepResources:      true,
	ComputeAssetHashes: true,
	SkipNulls:          true,
}

func unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	return plugin.UnmarshalProperties(s, marshalOpts)
}

func marshal(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, marshalOpts)
}

func checkType(urn string) error {
	if t := string(resource.URN(urn).Type()); t != localCommand {
		return fmt.Errorf("the sandbox command provider serves %s only, not %s", localCommand, t)
	}
	return nil
}

// operation gives one Create/Update/Delete its context: cancelled by the engine's Cancel, and by
// its `customTimeouts` entry when the engine sends one. go-provider v1.3.0
// middleware/cancel/cancel.go computes the deadline as time.Second*time.Duration(timeout): the
// float is truncated to whole seconds (a timeout under a second expires at once). Kept.
func (p *commandProvider) operation(ctx context.Context, timeout float64) (context.Context, func()) {
	var cancel context.CancelFunc
	if timeout == 0 {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, time.Second*time.Duration(timeout))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancelled {
		cancel()
		return ctx, cancel
	}
	id := p.nextID
	p.nextID++
	p.cancels[id] = cancel
	return ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if c, ok := p.cancels[id]; ok {
			c()
			delete(p.cancels, id)
		}
	}
}

// Cancel is what the engine sends on the first Ctrl-C (or SIGTERM): every running command is killed.
func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancelled = true
	for id, cancel := range p.cancels {
		cancel()
		delete(p.cancels, id)
	}
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (p *commandProvider) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: fmt.Sprintf(`{"name":"command","version":%q}`, version)}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *commandProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true}, nil
}

func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	for k, v := range news {
		if !isInput(k) && !strings.HasPrefix(string(k), "__") {
			failures = append(failures, &pulumirpc.CheckFailure{Property: string(k), Reason: "unknown input"})
			continue
		}
		if (k == "assetPaths" || k == "archivePaths") && !v.IsComputed() {
			for _, g := range plainStrings(v) {
				if _, err := compileGlob(strings.TrimPrefix(g, "!")); err != nil {
					failures = append(failures, &pulumirpc.CheckFailure{Property: string(k), Reason: err.Error()})
				}
			}
		}
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: failures}, nil
}

func isInput(k resource.PropertyKey) bool {
	for _, in := range inputKeys {
		if in == k {
			return true
		}
	}
	return false
}

func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, err
	}
	if len(olds) == 0 { // state written without old inputs: its inputs are the stored outputs' input keys
		if olds, err = unmarshal(req.GetOlds()); err != nil {
			return nil, err
		}
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	var diffs, replaces []string
	for _, k := range inputKeys {
		o, hasOld := olds[k]
		n, hasNew := news[k]
		if !hasOld && !hasNew {
			continue
		}
		if hasOld && hasNew && !n.ContainsUnknowns() && plainValue(o).DeepEquals(plainValue(n)) {
			continue
		}
		diffs = append(diffs, string(k))
		if k == "triggers" {
			replaces = append(replaces, string(k))
		}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{Changes: changes, Diffs: diffs, Replaces: replaces}, nil
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	inputs, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	id, err := resource.NewUniqueHex(string(resource.URN(req.GetUrn()).Name()), 8, 0)
	if err != nil {
		return nil, err
	}
	ctx, end := p.operation(ctx, req.GetTimeout())
	defer end()
	state, err := p.apply(ctx, req.GetUrn(), "create", inputs, nil, req.GetPreview())
	if err != nil {
		return nil, err
	}
	props, err := marshal(state)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	command := "update"
	if _, ok := news["update"]; !ok {
		command = "create"
	}
	ctx, end := p.operation(ctx, req.GetTimeout())
	defer end()
	state, err := p.apply(ctx, req.GetUrn(), command, news, olds, req.GetPreview())
	if err != nil {
		return nil, err
	}
	props, err := marshal(state)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	state, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	if _, ok := state["delete"]; ok {
		ctx, end := p.operation(ctx, req.GetTimeout())
		defer end()
		if _, err := p.run(ctx, req.GetUrn(), "delete", state, state); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// Read (refresh) returns the state and inputs exactly as the engine sent them, as upstream's
// default Read does (go-provider v1.3.0 infer/resource.go derivedResourceController.Read, with no
// CustomRead in pulumi-command v1.2.1). The engine elides asset and archive contents in what it
// sends Read, and stores what Read returns: after `pulumi refresh` (or `preview --refresh`) a
// Command's `archive` and `assets` are hashes without files. That is upstream's bug
// (pulumi-command#537, pulumi#18926, pulumi#20661), and this stand-in keeps it.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (p *commandProvider) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	return nil, fmt.Errorf("the sandbox command provider does not serve the function %s", req.GetTok())
}

// apply computes the new state: the inputs plus the outputs of running `command` (create or update);
// during preview nothing runs and the outputs are unknown.
func (p *commandProvider) apply(ctx context.Context, urn, command string, inputs, olds resource.PropertyMap,
	preview bool,
) (resource.PropertyMap, error) {
	state := resource.PropertyMap{}
	for _, k := range inputKeys {
		if v, ok := inputs[k]; ok {
			state[k] = v
		}
	}
	if preview {
		unknown := resource.MakeComputed(resource.NewProperty(""))
		state["stdout"], state["stderr"] = unknown, unknown
		if _, ok := inputs["assetPaths"]; ok {
			state["assets"] = unknown
		}
		if _, ok := inputs["archivePaths"]; ok {
			state["archive"] = unknown
		}
		return state, nil
	}
	// The previous outputs stay when no command runs; stdout and stderr are always there (upstream's
	// BaseOutputs declares them required: "" on a create without a `create` command).
	state["stdout"], state["stderr"] = resource.NewProperty(""), resource.NewProperty("")
	for _, k := range outputKeys {
		if v, ok := olds[k]; ok {
			state[k] = v
		}
	}
	if _, ok := inputs[resource.PropertyKey(command)]; !ok {
		return state, nil
	}
	outputs, err := p.run(ctx, urn, command, inputs, olds)
	if err != nil {
		return nil, err
	}
	// Never marked secret here: no input shares an output's name (go-provider markSecret), so a
	// secret `environment` leaves stdout in plain text unless additionalSecretOutputs names it.
	for k, v := range outputs {
		state[k] = v
	}
	return state, nil
}

// run runs the named command of `inputs`; `previous` holds the previous outputs (or nil).
func (p *commandProvider) run(ctx context.Context, urn, command string, inputs, previous resource.PropertyMap,
) (resource.PropertyMap, error) {
	text := plainString(inputs[resource.PropertyKey(command)])
	args := plainStrings(inputs["interpreter"])
	if len(args) == 0 {
		args = []string{"/bin/sh", "-c"}
	}
	args = append(args, text)

	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = plainString(inputs["dir"])
	if cmd.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		cmd.Dir = wd
	}
	cmd.Env = os.Environ()
	if env := plainValue(inputs["environment"]); env.IsObject() {
		keys := env.ObjectValue().StableKeys()
		for _, k := range keys {
			cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%s", k, plainString(env.ObjectValue()[k])))
		}
	}
	if add := plainValue(inputs["addPreviousOutputInEnv"]); !add.IsBool() || add.BoolValue() {
		if s := plainString(previous["stdout"]); s != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDOUT="+s)
		}
		if s := plainString(previous["stderr"]); s != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDERR="+s)
		}
	}
	if stdin := plainString(inputs["stdin"]); stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}

	// local/logging.go: unset means both; logged whether or not an input is secret.
	mode := plainString(inputs["logging"])
	logStdout := mode == "" || mode == "stdout" || mode == "stdoutAndStderr"
	logStderr := mode == "" || mode == "stderr" || mode == "stdoutAndStderr"
	var stdout, stderr bytes.Buffer
	combined := &lockedBuffer{}
	// One pipe for both streams, read line by line (local/commandOutputs.go run, util.LogOutput).
	loggingReader, loggingWriter := io.Pipe()
	stdoutWriters := []io.Writer{&stdout, combined}
	if logStdout {
		stdoutWriters = append(stdoutWriters, loggingWriter)
	}
	stderrWriters := []io.Writer{&stderr, combined}
	if logStderr {
		stderrWriters = append(stderrWriters, loggingWriter)
	}
	cmd.Stdout = io.MultiWriter(stdoutWriters...)
	cmd.Stderr = io.MultiWriter(stderrWriters...)
	logged := make(chan struct{})
	go p.logOutput(ctx, urn, loggingReader, logged)
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	loggingWriter.Close()
	<-logged
	if err != nil {
		return nil, fmt.Errorf("%w: running %q:\n%s", err, text, combined.String())
	}

	outputs := resource.PropertyMap{
		"stdout": resource.NewProperty(strings.TrimSuffix(stdout.String(), "\n")),
		"stderr": resource.NewProperty(strings.TrimSuffix(stderr.String(), "\n")),
	}
	if globs, ok := inputs["assetPaths"]; ok {
		assets, err := globAssets(cmd.Dir, plainStrings(globs))
		if err != nil {
			return nil, err
		}
		m := resource.PropertyMap{}
		for name, a := range assets {
			m[resource.PropertyKey(name)] = resource.NewAssetProperty(a)
		}
		outputs["assets"] = resource.NewProperty(m)
	}
	if globs, ok := inputs["archivePaths"]; ok {
		assets, err := globAssets(cmd.Dir, plainStrings(globs))
		if err != nil {
			return nil, err
		}
		members := map[string]any{}
		for name, a := range assets {
			members[name] = a
		}
		archive, err := resource.NewAssetArchive(members)
		if err != nil {
			return nil, err
		}
		outputs["archive"] = resource.NewArchiveProperty(archive)
	}
	return outputs, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logOutput sends each line read from r to the engine as an ephemeral info status of `urn`, with
// bufio.Scanner's default 64 KiB token limit, as upstream's util.LogOutput does. A longer line stops
// the scanner and this goroutine returns without reading the pipe again: the command's writes to
// it then block, and the command never finishes (upstream's behaviour with logging on).
func (p *commandProvider) logOutput(ctx context.Context, urn string, r io.Reader, done chan<- struct{}) {
	defer close(done)
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		if p.host != nil {
			_ = p.host.LogStatus(ctx, diag.Info, resource.URN(urn), scanner.Text())
		}
	}
}

// plainValue removes secret markers (the provider sees the values; the engine keeps them secret).
func plainValue(v resource.PropertyValue) resource.PropertyValue {
	switch {
	case v.IsSecret():
		return plainValue(v.SecretValue().Element)
	case v.IsArray():
		out := make([]resource.PropertyValue, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			out[i] = plainValue(e)
		}
		return resource.NewProperty(out)
	case v.IsObject():
		out := resource.PropertyMap{}
		for k, e := range v.ObjectValue() {
			out[k] = plainValue(e)
		}
		return resource.NewProperty(out)
	default:
		return v
	}
}

func plainString(v resource.PropertyValue) string {
	v = plainValue(v)
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func plainStrings(v resource.PropertyValue) []string {
	v = plainValue(v)
	if !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}

// globAssets matches the files under dir against the globs in order; a glob starting with `!`
// removes what earlier globs matched. Names are relative to dir, with `/` separators.
func globAssets(dir string, globs []string) (map[string]*resource.Asset, error) {
	type rule struct {
		re      *regexp.Regexp
		exclude bool
	}
	rules := make([]rule, 0, len(globs))
	for _, g := range globs {
		exclude := strings.HasPrefix(g, "!")
		re, err := compileGlob(strings.TrimPrefix(g, "!"))
		if err != nil {
			return nil, err
		}
		rules = append(rules, rule{re, exclude})
	}
	assets := map[string]*resource.Asset{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		for _, r := range rules {
			if !r.re.MatchString(p) {
				continue
			}
			if r.exclude {
				delete(assets, p)
				continue
			}
			a, err := resource.NewPathAsset(path.Join(dir, p))
			if err != nil {
				return err
			}
			assets[p] = a
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return assets, nil
}

// compileGlob turns a glob into a regexp: `**` matches across `/`, `*` and `?` do not, `[...]`
// is a character class and `{a,b}` an alternative.
func compileGlob(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	depth := 0
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch c {
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			end := strings.IndexByte(g[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("glob %q: unterminated [", g)
			}
			class := g[i+1 : i+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		case '{':
			depth++
			b.WriteString("(?:")
		case '}':
			if depth == 0 {
				return nil, fmt.Errorf("glob %q: unbalanced }", g)
			}
			depth--
			b.WriteString(")")
		case ',':
			if depth > 0 {
				b.WriteString("|")
			} else {
				b.WriteString(",")
			}
		case '\\':
			if i+1 < len(g) {
				i++
				b.WriteString(regexp.QuoteMeta(string(g[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("glob %q: unbalanced {", g)
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, errors.New("glob " + g + ": " + err.Error())
	}
	return re, nil
}
