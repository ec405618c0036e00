/**
 * The dynamic-provider host that ships in @pulumi/pulumi
 * (`cmd/dynamic-provider`), started as the Pulumi engine starts it (a child
 * process given the engine's address, printing the port it serves on) and
 * spoken to over its gRPC protocol with the SDK's own generated stubs:
 * GetPluginInfo, Configure, Check, Diff, Create, Update, Delete. Property
 * values travel as protobuf Structs; an unknown value (a preview's) is the
 * SDK's sentinel string, as the engine sends it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { Empty } from 'google-protobuf/google/protobuf/empty_pb';
import { Struct } from 'google-protobuf/google/protobuf/struct_pb';
import { ResourceProviderClient } from '@pulumi/pulumi/proto/provider_grpc_pb';
import * as prov from '@pulumi/pulumi/proto/provider_pb';
import * as rpc from '@pulumi/pulumi/runtime/rpc';

/** What the engine sends for a value a preview cannot know yet. */
export const UNKNOWN: string = rpc.unknownValue;

const HOST = require.resolve('@pulumi/pulumi/cmd/dynamic-provider/index.js');

type Props = Record<string, unknown>;
const struct = (o: object): Struct => Struct.fromJavaScript(o as Parameters<typeof Struct.fromJavaScript>[0]);

export class ProviderHost {
  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly client: ResourceProviderClient,
    /** What the host wrote on stderr (its errors and stack traces). */
    readonly stderr: string[],
  ) {}

  /** Start the host in `cwd` (Pulumi runs it in the project directory). */
  static async start(cwd: string): Promise<ProviderHost> {
    // The engine's address: the host takes it as its one argument and never dials it for a dynamic provider.
    const child = spawn(process.execPath, [HOST, '127.0.0.1:1'], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    child.stderr.on('data', (d: Buffer) => stderr.push(String(d)));
    const port = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(String(d).trim()));
      child.once('exit', (code) => reject(new Error(`the provider host exited (${code}): ${stderr.join('')}`)));
    });
    const client = new ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    return new ProviderHost(child, client, stderr);
  }

  private unary<Req, Res>(method: string, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, (r: Req, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method]!;
      fn.call(this.client, req, (e, r) => (e ? reject(e) : resolve(r)));
    });
  }

  async getPluginInfo(): Promise<string> {
    const info = await this.unary<Empty, { getVersion(): string }>('getPluginInfo', new Empty());
    return info.getVersion();
  }

  /** Configure as the engine does for a dynamic provider: no provider config, secrets not accepted (sent plain). */
  async configure(): Promise<{ acceptSecrets: boolean }> {
    const req = new prov.ConfigureRequest();
    req.setArgs(struct({}));
    req.setAcceptsecrets(true);
    const res = await this.unary<prov.ConfigureRequest, prov.ConfigureResponse>('configure', req);
    return { acceptSecrets: res.getAcceptsecrets() };
  }

  async check(urn: string, olds: object, news: object): Promise<{ inputs: Props; failures: { property: string; reason: string }[] }> {
    const req = new prov.CheckRequest();
    req.setUrn(urn);
    req.setOlds(struct(olds));
    req.setNews(struct(news));
    const res = await this.unary<prov.CheckRequest, prov.CheckResponse>('check', req);
    return {
      inputs: res.getInputs()?.toJavaScript() as Props,
      failures: res.getFailuresList().map((f) => ({ property: f.getProperty(), reason: f.getReason() })),
    };
  }

  async diff(urn: string, id: string, olds: object, news: object): Promise<{ changes: 'none' | 'some' | 'unknown'; replaces: string[] }> {
    const req = new prov.DiffRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setOlds(struct(olds));
    req.setNews(struct(news));
    const res = await this.unary<prov.DiffRequest, prov.DiffResponse>('diff', req);
    const c = res.getChanges();
    const D = prov.DiffResponse.DiffChanges;
    return { changes: c === D.DIFF_SOME ? 'some' : c === D.DIFF_NONE ? 'none' : 'unknown', replaces: res.getReplacesList() };
  }

  async create(urn: string, properties: object, timeoutSeconds = 3600): Promise<{ id: string; properties: Props }> {
    const req = new prov.CreateRequest();
    req.setUrn(urn);
    req.setProperties(struct(properties));
    req.setTimeout(timeoutSeconds);
    const res = await this.unary<prov.CreateRequest, prov.CreateResponse>('create', req);
    return { id: res.getId(), properties: res.getProperties()?.toJavaScript() as Props };
  }

  async update(urn: string, id: string, olds: object, news: object, timeoutSeconds = 3600): Promise<Props> {
    const req = new prov.UpdateRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setOlds(struct(olds));
    req.setNews(struct(news));
    req.setTimeout(timeoutSeconds);
    const res = await this.unary<prov.UpdateRequest, prov.UpdateResponse>('update', req);
    return res.getProperties()?.toJavaScript() as Props;
  }

  async delete(urn: string, id: string, properties: object): Promise<void> {
    const req = new prov.DeleteRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setProperties(struct(properties));
    await this.unary<prov.DeleteRequest, Empty>('delete', req);
  }

  stop(): void {
    this.client.close();
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}
