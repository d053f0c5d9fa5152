/** Physical names derived from the stack, for resources whose names the clouds make unique per project. */

/** A GCP resource id from a name: lowercase letters, digits and hyphens, starting with a letter, <= 63. */
export function gcpResourceId(name: string): string {
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^[^a-z]+/, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  if (!id) throw new Error(`"${name}" leaves no valid GCP resource id`);
  return id;
}
