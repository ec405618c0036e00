/**
 * The database objects a migration needs, managed as @pulumi/postgresql
 * resources rather than ad-hoc SQL: on the target, the migration role (member
 * of the managed admin role, so it may create subscriptions), the database,
 * its extensions, and — once the run has created the application roles — their
 * CONNECT grants; on the source, where the user allows it, a replication role.
 */
import * as pulumi from '@pulumi/pulumi';
import * as postgresql from '@pulumi/postgresql';
import * as random from '@pulumi/random';
import { childOptions } from './options';

export interface Endpoint {
  readonly host: pulumi.Input<string>;
  readonly port: pulumi.Input<number>;
  readonly username: pulumi.Input<string>;
  readonly password: pulumi.Input<string>;
  /** The database to connect to for administration (e.g. postgres). */
  readonly database: pulumi.Input<string>;
  readonly sslmode?: pulumi.Input<string>;
}

export interface DatabaseObjectsArgs {
  /** The target server, as its admin user. */
  readonly target: Endpoint;
  /** The migrated database to create on the target. */
  readonly databaseName: pulumi.Input<string>;
  /** Extensions to create before the schema arrives. */
  readonly extensions: readonly string[];
  /** Managed admin role to grant the migration role (rds_superuser on RDS). */
  readonly adminRole?: string;
  /** The source server as an admin, when pgrelocate may create its replication role there. */
  readonly source?: Endpoint & { readonly isRds: boolean };
}

/** The role a logical migration connects to the source as, and its grants. Pure. */
export function replicationRoleSpec(isRds: boolean): { replication: boolean; roles: string[] } {
  // RDS has no REPLICATION attribute for users; membership in rds_replication grants it.
  return isRds ? { replication: false, roles: ['rds_replication'] } : { replication: true, roles: [] };
}

export class DatabaseObjects extends pulumi.ComponentResource {
  readonly migrationRole: postgresql.Role;
  readonly migrationPassword: pulumi.Output<string>;
  readonly database: postgresql.Database;
  readonly sourceRole?: postgresql.Role;
  readonly sourceRolePassword?: pulumi.Output<string>;
  private readonly targetProvider: postgresql.Provider;

  constructor(name: string, args: DatabaseObjectsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('pgrelocate:index:DatabaseObjects', name, {}, opts);
    this.targetProvider = new postgresql.Provider(
      `${name}-target`,
      {
        host: args.target.host,
        port: args.target.port,
        username: args.target.username,
        password: args.target.password,
        database: args.target.database,
        sslmode: args.target.sslmode ?? 'require',
        superuser: false,
      },
      childOptions(this),
    );
    const onTarget = { parent: this, provider: this.targetProvider };
    this.migrationPassword = new random.RandomPassword(
      `${name}-migration-password`,
      { length: 32, special: false },
      childOptions(this),
    ).result;
    this.migrationRole = new postgresql.Role(
      `${name}-migration-role`,
      {
        name: 'pgrelocate',
        login: true,
        password: this.migrationPassword,
        createRole: true,
        createDatabase: true,
        roles: args.adminRole ? [args.adminRole] : [],
      },
      onTarget,
    );
    this.database = new postgresql.Database(
      `${name}-database`,
      { name: args.databaseName, owner: this.migrationRole.name, template: 'template0', encoding: 'UTF8' },
      onTarget,
    );
    for (const ext of args.extensions) {
      new postgresql.Extension(
        `${name}-ext-${ext}`,
        { name: ext, database: this.database.name },
        { ...onTarget, dependsOn: [this.database] },
      );
    }
    if (args.source) {
      const sourceProvider = new postgresql.Provider(
        `${name}-source`,
        {
          host: args.source.host,
          port: args.source.port,
          username: args.source.username,
          password: args.source.password,
          database: args.source.database,
          sslmode: args.source.sslmode ?? 'require',
          superuser: false,
        },
        childOptions(this),
      );
      this.sourceRolePassword = new random.RandomPassword(
        `${name}-source-password`,
        { length: 32, special: false },
        childOptions(this),
      ).result;
      const spec = replicationRoleSpec(args.source.isRds);
      this.sourceRole = new postgresql.Role(
        `${name}-source-role`,
        {
          name: 'pgrelocate_replication',
          login: true,
          password: this.sourceRolePassword,
          replication: spec.replication,
          roles: spec.roles,
        },
        { parent: this, provider: sourceProvider },
      );
    }
    this.registerOutputs({ database: this.database.name, migrationRole: this.migrationRole.name });
  }

  /** CONNECT and TEMPORARY on the target database for roles the run brought over. */
  grantApplicationRoles(roles: readonly string[], after: pulumi.Resource): postgresql.Grant[] {
    return roles.map(
      (role) =>
        new postgresql.Grant(
          `pgrelocate-grant-${role}`,
          { database: this.database.name, role, objectType: 'database', privileges: ['CONNECT', 'TEMPORARY'] },
          // Not a child of this component: the run depends on the component, and these depend on the run.
          { provider: this.targetProvider, dependsOn: [after] },
        ),
    );
  }
}
