import { ref } from 'vue'
import type { Profile } from './types'

/** The logged-in user, or null. */
export const profile = ref<Profile | null>(null)
