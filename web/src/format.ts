export function bytes(n?: number | null): string {
  if (n === undefined || n === null) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/** Megabytes (hosts and storages count in MB). */
export function mb(n?: number | null): string {
  return n === undefined || n === null ? '-' : bytes(n * 1024 * 1024)
}

export function time(s?: string | null): string {
  if (!s) return '-'
  const d = new Date(s)
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString()
}

export function statusClass(status?: string): string {
  const s = status ?? ''
  if (/fail|error|killed|offline|disabled/.test(s)) return 'bad'
  if (/^(running|active|available|online|enabled|ready|ok|complete)$/.test(s)) return s === 'ready' ? 'idle' : 'good'
  return 'busy'
}
