import { reactive } from 'vue'
import { ApiError } from './api'

export interface Toast {
  id: number
  kind: 'error' | 'success' | 'info'
  text: string
}

let next = 1
export const toasts = reactive<Toast[]>([])

export function toast(kind: Toast['kind'], text: string, ms = 6000) {
  const t = { id: next++, kind, text }
  toasts.push(t)
  setTimeout(() => dismiss(t.id), ms)
}

export function dismiss(id: number) {
  const i = toasts.findIndex((t) => t.id === id)
  if (i >= 0) toasts.splice(i, 1)
}

/** An error toast with the API's `details`. */
export function showError(e: unknown) {
  if (e instanceof ApiError) toast('error', e.details, 10000)
  else toast('error', String((e as Error)?.message ?? e), 10000)
}

/** Toasts for the ids a batch call could not act on; true when every one succeeded. */
export function reportBatch(items: { id: string; status: number; data: unknown }[]): boolean {
  const failed = items.filter((i) => i.status >= 300)
  for (const f of failed) {
    const details = (f.data as { details?: string } | null)?.details ?? `status ${f.status}`
    toast('error', `${f.id}: ${details}`, 10000)
  }
  return failed.length === 0
}
