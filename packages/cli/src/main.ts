export async function cliMain(argv: string[]): Promise<number> {
  console.error(`garrison: the admin CLI is being built (${argv.join(' ')})`);
  return 2;
}
