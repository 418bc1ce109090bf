/**
 * AWS credentials from the standard chain, in the SDKs' order: the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared credentials file (AWS_SHARED_CREDENTIALS_FILE
 * or ~/.aws/credentials, profile AWS_PROFILE or "default"), then the instance role through the
 * metadata service (refreshed before it expires).
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { UserError } from "../../user-error.js";
import type { AwsCredentials } from "./aws-sigv4.js";
import type { InstanceMetadata } from "./instance-metadata.js";

/** The profiles of an INI credentials file (pure). */
export function parseCredentialsFile(text: string): Map<string, Record<string, string>> {
  const profiles = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (section) {
      current = {};
      profiles.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (current && eq > 0) current[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim();
  }
  return profiles;
}

export function credentialsFromEnv(env: NodeJS.ProcessEnv): AwsCredentials | undefined {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
}

async function credentialsFromFile(env: NodeJS.ProcessEnv): Promise<AwsCredentials | undefined> {
  const file = env.AWS_SHARED_CREDENTIALS_FILE || join(env.HOME || homedir(), ".aws", "credentials");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  const profileName = env.AWS_PROFILE || "default";
  const profile = parseCredentialsFile(text).get(profileName);
  if (!profile) {
    if (env.AWS_PROFILE) throw new UserError(`AWS_PROFILE "${profileName}" is not in ${file}`);
    return undefined;
  }
  const accessKeyId = profile.aws_access_key_id;
  const secretAccessKey = profile.aws_secret_access_key;
  if (!accessKeyId || !secretAccessKey) {
    throw new UserError(
      `profile "${profileName}" in ${file} lacks aws_access_key_id or aws_secret_access_key`,
    );
  }
  return { accessKeyId, secretAccessKey, sessionToken: profile.aws_session_token || undefined };
}

async function credentialsFromRole(imds: InstanceMetadata): Promise<AwsCredentials | undefined> {
  const roles = await imds.get("meta-data/iam/security-credentials/");
  const role = roles?.split("\n")[0]?.trim();
  if (!role) return undefined;
  const body = await imds.require(`meta-data/iam/security-credentials/${role}`);
  const doc = JSON.parse(body) as Record<string, unknown>;
  if (doc.Code !== undefined && doc.Code !== "Success") {
    throw new Error(`instance role ${role}: the metadata service says ${String(doc.Code)}`);
  }
  const { AccessKeyId, SecretAccessKey, Token, Expiration } = doc;
  if (typeof AccessKeyId !== "string" || typeof SecretAccessKey !== "string") {
    throw new Error(
      `instance role ${role}: the metadata service's credentials lack AccessKeyId/SecretAccessKey`,
    );
  }
  return {
    accessKeyId: AccessKeyId,
    secretAccessKey: SecretAccessKey,
    sessionToken: typeof Token === "string" ? Token : undefined,
    expiration: typeof Expiration === "string" ? new Date(Expiration) : undefined,
  };
}

/** Resolves the chain once, then again only when temporary credentials are about to expire. */
export class CredentialChain {
  private cached: AwsCredentials | undefined;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly imds: InstanceMetadata,
  ) {}

  async get(): Promise<AwsCredentials> {
    const c = this.cached;
    if (c && (!c.expiration || c.expiration.getTime() - Date.now() > 5 * 60_000)) return c;
    const found =
      credentialsFromEnv(this.env) ??
      (await credentialsFromFile(this.env)) ??
      (await credentialsFromRole(this.imds));
    if (!found) {
      throw new UserError(
        "no AWS credentials: none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared credentials file or an instance role",
        "attach an IAM instance role to the instance (or set the environment variables)",
      );
    }
    this.cached = found;
    return found;
  }
}
