// Resource kinds shown by the generic ResourceView: columns, create fields, row actions.
import type { Column } from '../components/ResourceList.vue'
import type { RowAction } from '../components/ResourceView.vue'
import { IPV4, NAME, type FieldSpec } from '../fields'
import { mb, time } from '../format'
import type { MessageKey } from '../i18n'
import type { Action, Host, Network, Project, Secgroup, Storage, User, Wire } from '../types'

export interface PageConfig {
  title: MessageKey
  resource: string
  keyword: string
  kind: MessageKey
  columns: Column<any>[]
  createFields?: FieldSpec[]
  deletable?: boolean
  rowActions?: RowAction[]
  batchActions?: RowAction[]
}

const name: Column<{ name: string }> = { key: 'name', label: 'common.name', sortable: true }
const created: Column<{ created_at?: string }> = { key: 'created_at', label: 'common.created', sortable: true, render: (r) => time(r.created_at) }
const status: Column<{ status?: string }> = { key: 'status', label: 'common.status', status: true }
// Services that add the project's name send `tenant`; the others only `tenant_id`.
const project: Column<{ tenant?: string; tenant_id?: string }> = { key: 'tenant', label: 'common.project', render: (r) => r.tenant ?? r.tenant_id ?? '-' }

export const networks: PageConfig = {
  title: 'nav.networks',
  resource: 'networks',
  keyword: 'network',
  kind: 'network.kind',
  columns: [
    name,
    status,
    { key: 'guest_ip_start', label: 'network.start', render: (r: Network) => `${r.guest_ip_start} – ${r.guest_ip_end}/${r.guest_ip_mask}` },
    { key: 'guest_gateway', label: 'network.gateway' },
    { key: 'wire', label: 'network.wire' },
    { key: 'ports', label: 'network.ports', render: (r: Network) => `${(r.ports ?? 0) - (r.ports_used ?? 0)} / ${r.ports ?? 0}` },
    project,
  ],
  createFields: [
    { key: 'name', label: 'common.name', type: 'text', required: true, pattern: NAME },
    { key: 'wire', label: 'network.wire', type: 'select', required: true, options: { resource: 'wires' } },
    { key: 'guest_ip_start', label: 'network.start', type: 'text', required: true, pattern: IPV4 },
    { key: 'guest_ip_end', label: 'network.end', type: 'text', required: true, pattern: IPV4 },
    { key: 'guest_ip_mask', label: 'network.mask', type: 'number', required: true, min: 8, max: 30, default: 24 },
    { key: 'guest_gateway', label: 'network.gateway', type: 'text', pattern: IPV4 },
  ],
}

export const wires: PageConfig = {
  title: 'nav.wires',
  resource: 'wires',
  keyword: 'wire',
  kind: 'wire.kind',
  columns: [name, status, { key: 'zone', label: 'wire.zone' }, { key: 'bandwidth', label: 'wire.bandwidth' }, { key: 'mtu', label: 'wire.mtu' }, created] as Column<Wire>[],
  createFields: [
    { key: 'name', label: 'common.name', type: 'text', required: true, pattern: NAME },
    { key: 'zone', label: 'wire.zone', type: 'select', required: true, options: { resource: 'zones' } },
    { key: 'bandwidth', label: 'wire.bandwidth', type: 'number', min: 0, default: 1000 },
    { key: 'mtu', label: 'wire.mtu', type: 'number', min: 576, max: 9216, default: 1500 },
  ],
}

export const hosts: PageConfig = {
  title: 'nav.hosts',
  resource: 'hosts',
  keyword: 'host',
  kind: 'host.kind',
  deletable: false,
  columns: [
    name,
    status,
    { key: 'host_status', label: 'host.agent', status: true },
    { key: 'access_ip', label: 'host.ip' },
    { key: 'cpu_count', label: 'host.cpu', render: (r: Host) => `${r.cpu_commit ?? 0} / ${r.cpu_count ?? '-'}` },
    {
      key: 'mem_size',
      label: 'host.mem',
      render: (r: Host) => `${mb(r.mem_commit ?? 0)} / ${mb(r.mem_size)}${r.mem_reserved ? ` (${mb(r.mem_reserved)} reserved)` : ''}`,
    },
    { key: 'guests', label: 'host.guests', render: (r: Host) => String(r.guests ?? 0) },
  ],
  rowActions: [
    { label: 'user.enable', action: 'enable', when: (r) => r.enabled === false },
    { label: 'user.disable', action: 'disable', confirm: true, when: (r) => r.enabled !== false },
  ],
}

export const storages: PageConfig = {
  title: 'nav.storages',
  resource: 'storages',
  keyword: 'storage',
  kind: 'storage.kind',
  deletable: false,
  columns: [
    name,
    status,
    { key: 'storage_type', label: 'storage.type' },
    { key: 'capacity', label: 'storage.capacity', render: (r: Storage) => mb(r.capacity) },
    {
      key: 'used_capacity',
      label: 'storage.allocated',
      render: (r: Storage) => (r.capacity ? `${mb(r.used_capacity ?? 0)} (${Math.round(((r.used_capacity ?? 0) * 100) / r.capacity)}%)` : '-'),
    },
    {
      key: 'actual_capacity_used',
      label: 'storage.used',
      render: (r: Storage) => (r.capacity ? `${mb(r.actual_capacity_used ?? 0)} (${Math.round(((r.actual_capacity_used ?? 0) * 100) / r.capacity)}%)` : '-'),
    },
  ],
}

export const secgroups: PageConfig = {
  title: 'nav.secgroups',
  resource: 'secgroups',
  keyword: 'secgroup',
  kind: 'secgroup.kind',
  columns: [name, { key: 'rules', label: 'secgroup.rules' }, project, created] as Column<Secgroup>[],
  createFields: [
    { key: 'name', label: 'common.name', type: 'text', required: true, pattern: NAME },
    { key: 'description', label: 'project.description', type: 'text' },
  ],
}

export const users: PageConfig = {
  title: 'nav.users',
  resource: 'users',
  keyword: 'user',
  kind: 'user.kind',
  columns: [name, { key: 'enabled', label: 'user.enabled', render: (r: User) => (r.enabled === false ? 'no' : 'yes') }, { key: 'domain', label: 'user.domain' }, created],
  createFields: [
    { key: 'name', label: 'common.name', type: 'text', required: true, pattern: NAME },
    { key: 'password', label: 'user.password', type: 'password', required: true },
    { key: 'project', label: 'common.project', type: 'select', options: { resource: 'projects' } },
    { key: 'role', label: 'ra.role', type: 'select', options: { resource: 'roles' } },
  ],
  rowActions: [
    { label: 'user.enable', action: 'enable', when: (r) => r.enabled === false },
    { label: 'user.disable', action: 'disable', confirm: true, when: (r) => r.enabled !== false },
  ],
  batchActions: [
    { label: 'user.enable', action: 'enable' },
    { label: 'user.disable', action: 'disable', confirm: true },
  ],
}

export const projects: PageConfig = {
  title: 'nav.projects',
  resource: 'projects',
  keyword: 'project',
  kind: 'project.kind',
  columns: [name, { key: 'description', label: 'project.description' }, { key: 'domain', label: 'user.domain' }, created] as Column<Project>[],
  createFields: [
    { key: 'name', label: 'common.name', type: 'text', required: true, pattern: NAME },
    { key: 'description', label: 'project.description', type: 'text' },
  ],
}

export const actions: PageConfig = {
  title: 'nav.actions',
  resource: 'actions',
  keyword: 'action',
  kind: 'nav.actions',
  deletable: false,
  columns: [
    { key: 'ops_time', label: 'action.time', sortable: true, render: (r: Action) => time(r.ops_time) },
    { key: 'user', label: 'action.user' },
    { key: 'service', label: 'action.service' },
    { key: 'obj_name', label: 'action.object', render: (r: Action) => `${r.obj_type} ${r.obj_name ?? ''}` },
    { key: 'action', label: 'action.action' },
    { key: 'success', label: 'action.success', render: (r: Action) => (r.success ? 'yes' : 'no') },
    { key: 'notes', label: 'action.notes', render: (r: Action) => (r.notes ?? '').slice(0, 120) },
  ],
}
