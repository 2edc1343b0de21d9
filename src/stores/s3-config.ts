/**
 * How an S3 client is configured: the daemon config's `s3` section first, then the usual AWS environment
 * variables, then defaults that make S3-compatible stores (MinIO, Ceph, …) work without more settings.
 * The only place the store layer reads `process.env`.
 */
import type { S3ClientConfig } from '@aws-sdk/client-s3';

/** The daemon config's `s3` section (docs/configuration.md); every key optional. */
export interface S3Settings {
  /** Endpoint URL of an S3-compatible store (`http://minio:9000`). Default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS. */
  readonly endpoint?: string | undefined;
  /** Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`. */
  readonly region?: string | undefined;
  /** Path-style addressing (`endpoint/bucket/key`). Default: true when an endpoint is set (MinIO needs it), else false. */
  readonly force_path_style?: boolean | undefined;
  /** With `secret_access_key`; default: the SDK's chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, profiles, instance roles). */
  readonly access_key_id?: string | undefined;
  readonly secret_access_key?: string | undefined;
}

/** The SDK client config for `settings` in `env` (default `process.env`). */
export function s3ClientConfig(settings: S3Settings = {}, env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const endpoint = settings.endpoint ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const config: S3ClientConfig = {
    region: settings.region ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
    forcePathStyle: settings.force_path_style ?? endpoint !== undefined,
    // Bounded: a store that stops answering fails the call (retried by the SDK, 3 attempts) instead of hanging it.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  };
  if (endpoint !== undefined) {
    config.endpoint = endpoint;
    // The SDK's default CRC checksums on every upload (aws-chunked trailers) are not understood by many
    // S3-compatible stores; ask for checksums only where S3 requires them, unless the environment says otherwise.
    if (env.AWS_REQUEST_CHECKSUM_CALCULATION === undefined) config.requestChecksumCalculation = 'WHEN_REQUIRED';
    if (env.AWS_RESPONSE_CHECKSUM_VALIDATION === undefined) config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  if (settings.access_key_id !== undefined && settings.secret_access_key !== undefined) {
    config.credentials = { accessKeyId: settings.access_key_id, secretAccessKey: settings.secret_access_key };
  }
  return config;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
