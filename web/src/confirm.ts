import { reactive } from 'vue'

/** The one pending confirmation, shown by ConfirmHost in App.vue. */
export const pending = reactive<{ message: string; resolve: ((ok: boolean) => void) | null }>({ message: '', resolve: null })

/** Asks the user to confirm a destructive action. */
export function confirm(message: string): Promise<boolean> {
  return new Promise((resolve) => {
    pending.message = message
    pending.resolve = (ok: boolean) => {
      pending.resolve = null
      resolve(ok)
    }
  })
}
