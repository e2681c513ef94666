// Types of the API's JSON, as the console reads them.

export interface Observed {
  status?: string;
  runtime_id?: string;
  port?: number;
  since?: string;
  message?: string;
}

export interface Instance {
  id: string;
  name: string;
  region?: string;
  placement?: string;
  driver?: string;
  image?: string;
  node_red_version?: string;
  desired_state?: string;
  resources: { cpu?: number; memory_mb?: number };
  env?: Record<string, string>;
  /** env_masked: the caller may not manage the instance, so env values are empty. */
  env_masked?: boolean;
  /** secret_env_keys names the secret variables; their values are never returned. */
  secret_env_keys?: string[];
  flows_version?: string;
  observed: Observed;
  created_at: string;
  updated_at: string;
  /** replicas is how many runtimes serve the instance (1 when absent). */
  replicas?: number;
  /** live_row is the catalog row serving the instance (its own id or a deployment color's). */
  live_row?: string;
  /** allocations: the live row's replicas and where they run. */
  allocations?: Replica[];
}

/** Replica is one runtime of an instance, placed on a hub by the scheduler. */
export interface Replica {
  id: string;
  replica: number;
  hub: string;
  region?: string;
  color: string;
  status: string;
  address?: string;
  since?: string;
  message?: string;
  reason?: string;
  stopping?: boolean;
}

/** Hub is one hub of the cluster as GET /api/hubs shows it. */
export interface Hub {
  id: string;
  region?: string;
  api?: string;
  advertise?: string;
  state: string;
  since?: string;
  reason?: string;
  draining?: boolean;
  leader: boolean;
  allocations: number;
  running: number;
  reserved_mb: number;
}

export interface Metrics {
  instance_id: string;
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes?: number;
  at: string;
}

export interface HubEvent<T = any> {
  type: string;
  time: string;
  data: T;
}

export interface PhaseRecord {
  phase: string;
  status: string;
  at: string;
  message?: string;
}

export interface Deployment {
  id: string;
  instance_id: string;
  strategy?: string;
  phase?: string;
  status?: string;
  progress: number;
  from_flows_version?: string;
  to_flows_version?: string;
  /** The recorded flows version numbers (GET /api/instances/:id/flows/versions), when known. */
  from_version?: number;
  to_version?: number;
  started_by?: string;
  started_at: string;
  updated_at: string;
  finished_at?: string;
  history?: PhaseRecord[];
  smoke?: unknown;
  error?: string;
  // GET /api/deployments/:id only:
  instance?: string;
  blue?: string;
  green?: string;
  held?: number;
  in_flight?: number;
}

export interface AuditRecord {
  id: number;
  time: string;
  user_id: string;
  username: string;
  action: string;
  resource_type: string;
  resource_id: string;
  details?: unknown;
  ip: string;
  user_agent: string;
  hash: string;
}

export interface UserInfo {
  id: string;
  username: string;
  email?: string;
  role: string;
  disabled: boolean;
  created_at: string;
}

export interface TokenInfo {
  id: string;
  name?: string;
  role: string;
  scope: string;
  instance_id?: string;
  created_by?: string;
  created_at: string;
  expires_at?: string;
  revoked?: boolean;
}

export interface Transition {
  id?: number;
  time: string;
  instance_id: string;
  row_id: string;
  row_name?: string;
  status: string;
  prev_status?: string;
  message?: string;
}

export interface FlowsVersion {
  instance_id: string;
  version: number;
  flows?: unknown[];
  sha256: string;
  size: number;
  source: 'put' | 'deployment';
  deployment_id?: string;
  user_id?: string;
  username?: string;
  time: string;
}
