export async function runDemo(_o: {rate:number; durationSeconds?: number; writers: number; dbUrl?: string}): Promise<number> { throw new Error("demo not built yet"); }
