// Create forms: field specs and validation that mirrors the API's, so most mistakes are caught
// before the request; the API's own error is still shown if it disagrees.
import type { MessageKey } from './i18n'
import { t } from './i18n'

export interface Option {
  value: string
  label: string
}

export interface FieldSpec {
  key: string
  label: MessageKey
  type: 'text' | 'number' | 'password' | 'select' | 'textarea' | 'checkbox'
  required?: boolean
  min?: number
  max?: number
  /** A regular expression the value must match, and what to say when it does not. */
  pattern?: { re: RegExp; message: string }
  /** Options: fixed, or the names of a resource's rows. */
  options?: Option[] | { resource: string; valueKey?: string; params?: Record<string, unknown> }
  default?: string | number | boolean
}

export const IPV4 = { re: /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/, message: 'must be an IPv4 address' }
export const NAME = { re: /^[A-Za-z][A-Za-z0-9._@-]{1,127}$/, message: 'must start with a letter and use letters, digits, . _ @ -' }

/** The first problem with `values` against `fields`, or ''. */
export function validate(fields: FieldSpec[], values: Record<string, unknown>): string {
  for (const f of fields) {
    const v = values[f.key]
    const empty = v === undefined || v === null || v === ''
    if (empty) {
      if (f.required) return t('common.required', { field: t(f.label) })
      continue
    }
    if (f.type === 'number') {
      const n = Number(v)
      if (!Number.isFinite(n)) return `${t(f.label)}: not a number`
      if (f.min !== undefined && n < f.min) return `${t(f.label)}: at least ${f.min}`
      if (f.max !== undefined && n > f.max) return `${t(f.label)}: at most ${f.max}`
    }
    if (f.pattern && !f.pattern.re.test(String(v))) return `${t(f.label)}: ${f.pattern.message}`
  }
  return ''
}

/** The values to send: numbers as numbers, empty optional fields left out. */
export function payload(fields: FieldSpec[], values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const f of fields) {
    const v = values[f.key]
    if (v === undefined || v === null || v === '') continue
    out[f.key] = f.type === 'number' ? Number(v) : v
  }
  return out
}
