$hits = data.get( "hits:" . http.getPath() ) + 1;
data.set( "hits:" . http.getPath(), $hits );
