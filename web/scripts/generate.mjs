// npm run generate: TypeScript from proto/ and third_party/ into src/gen.
import { generate } from "./buf.mjs";

generate();
